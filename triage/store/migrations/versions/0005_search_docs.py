"""full-text search over messages (SQLite FTS5, PostgreSQL tsvector), accent-insensitive

A table ``search_docs`` holds one document per message (subject, sender, body),
kept up to date by triggers on ``messages``, so nothing that writes messages has
to know about search. It is not in the models (alembic's check skips it, see
env.py): its shape differs per database.

- SQLite: an FTS5 table, ``unicode61 remove_diacritics 2`` ("szamla" finds "számla");
- PostgreSQL: a ``tsvector`` column with a GIN index, the text folded by
  ``triage_fold`` (the accented Latin letters of Hungarian and its neighbours
  mapped to their base letter, then lowercased) under the ``simple`` configuration.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCENTED = "áàâäãåāăąéèêëēėęěíìîïīįóòôöõőøōúùûüűūůųýÿçćčďđğłńňñřśšşťţźżž"
PLAIN = "aaaaaaaaaeeeeeeeeiiiiiioooooooouuuuuuuuyycccddglnnnrsssttzzz"
MAX_BODY = 100_000
"""Characters of a body indexed (a tsvector holds at most 1 MB)."""

SQLITE_DOC = (
    "coalesce(new.subject, '') || ' ' || coalesce(new.from_name, '') || ' ' ||"
    f" coalesce(new.from_addr, '') || ' ' || substr(coalesce(new.body_text, ''), 1, {MAX_BODY})"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_docs USING fts5("
            "ticket_id UNINDEXED, text, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER search_docs_insert AFTER INSERT ON messages BEGIN"
            " INSERT INTO search_docs(rowid, ticket_id, text)"
            f" VALUES (new.id, new.ticket_id, {SQLITE_DOC}); END"
        )
        op.execute(
            "CREATE TRIGGER search_docs_update AFTER UPDATE OF ticket_id, subject, body_text,"
            " from_name, from_addr ON messages BEGIN"
            " DELETE FROM search_docs WHERE rowid = old.id;"
            " INSERT INTO search_docs(rowid, ticket_id, text)"
            f" VALUES (new.id, new.ticket_id, {SQLITE_DOC}); END"
        )
        op.execute(
            "CREATE TRIGGER search_docs_delete AFTER DELETE ON messages BEGIN"
            " DELETE FROM search_docs WHERE rowid = old.id; END"
        )
        op.execute(
            "INSERT INTO search_docs(rowid, ticket_id, text) SELECT id, ticket_id, "
            + SQLITE_DOC.replace("new.", "")
            + " FROM messages"
        )
        return
    accented = ACCENTED + ACCENTED.upper()
    plain = PLAIN + PLAIN.upper()
    op.execute(
        "CREATE OR REPLACE FUNCTION triage_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE"
        f" PARALLEL SAFE AS $$ SELECT lower(translate(t, '{accented}@._-/', '{plain}     ')) $$"
    )
    op.execute(
        "CREATE TABLE search_docs (message_id integer PRIMARY KEY, ticket_id integer,"
        " doc tsvector NOT NULL)"
    )
    op.execute("CREATE INDEX ix_search_docs_doc ON search_docs USING gin (doc)")
    op.execute("CREATE INDEX ix_search_docs_ticket_id ON search_docs (ticket_id)")
    doc = (
        "to_tsvector('simple', triage_fold(coalesce({p}subject, '') || ' ' ||"
        " coalesce({p}from_name, '') || ' ' || coalesce({p}from_addr, '') || ' ' ||"
        f" left(coalesce({{p}}body_text, ''), {MAX_BODY})))"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION triage_search_doc() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO search_docs(message_id, ticket_id, doc)"
        f" VALUES (NEW.id, NEW.ticket_id, {doc.format(p='NEW.')})"
        " ON CONFLICT (message_id) DO UPDATE SET ticket_id = EXCLUDED.ticket_id,"
        " doc = EXCLUDED.doc; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER search_docs_write AFTER INSERT OR UPDATE OF ticket_id, subject,"
        " body_text, from_name, from_addr ON messages FOR EACH ROW"
        " EXECUTE FUNCTION triage_search_doc()"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION triage_search_forget() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN DELETE FROM search_docs WHERE message_id = OLD.id; RETURN OLD; END $$"
    )
    op.execute(
        "CREATE TRIGGER search_docs_delete AFTER DELETE ON messages FOR EACH ROW"
        " EXECUTE FUNCTION triage_search_forget()"
    )
    op.execute(
        "INSERT INTO search_docs(message_id, ticket_id, doc)"
        f" SELECT id, ticket_id, {doc.format(p='')} FROM messages"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("search_docs_insert", "search_docs_update", "search_docs_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_docs")
        return
    op.execute("DROP TRIGGER IF EXISTS search_docs_write ON messages")
    op.execute("DROP TRIGGER IF EXISTS search_docs_delete ON messages")
    op.execute("DROP TABLE IF EXISTS search_docs")
    op.execute("DROP FUNCTION IF EXISTS triage_search_doc()")
    op.execute("DROP FUNCTION IF EXISTS triage_search_forget()")
    op.execute("DROP FUNCTION IF EXISTS triage_fold(text)")
