// The assistants' page: keyboard shortcuts, live updates, small helpers.
// No inline script anywhere (CSP script-src 'self'); htmx does the form posts.
(function () {
  "use strict";

  const body = document.body;

  function inField(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function rows() {
    return Array.from(document.querySelectorAll("#rows > li.row"));
  }

  function select(delta) {
    const all = rows();
    if (!all.length) return;
    let index = all.findIndex((r) => r.classList.contains("selected"));
    all.forEach((r) => r.classList.remove("selected"));
    index = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + delta));
    all[index].classList.add("selected");
    all[index].scrollIntoView({ block: "nearest" });
    body.dataset.selected = all[index].dataset.ticket;
  }

  function clickKey(key) {
    const el = document.querySelector('[data-key="' + key + '"]');
    if (!el) return false;
    if (el.tagName.toLowerCase() === "details") {
      el.open = true;
      const field = el.querySelector("textarea, input, select");
      if (field) field.focus();
    } else if (["textarea", "select", "input"].indexOf(el.tagName.toLowerCase()) >= 0) {
      el.focus();
    } else {
      el.click();
    }
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (body.dataset.shortcuts !== "1") return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (inField(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (key === "j") select(1);
    else if (key === "k") select(-1);
    else if (key === "Enter") {
      const row = document.querySelector("#rows > li.row.selected a.open");
      if (!row) return;
      window.location.assign(row.getAttribute("href"));
    } else if (key === "/") {
      const search = document.getElementById("search");
      if (search) search.focus();
    } else if (key === "?") {
      const help = document.getElementById("help");
      if (help && !help.open) help.showModal();
    } else if ("crnmsd".indexOf(key) >= 0 && key.length === 1) {
      if (!clickKey(key)) return;
    } else return;
    event.preventDefault();
  });

  // Live updates: one EventSource per page; the browser resumes with Last-Event-ID.
  function refresh(target, url) {
    if (!window.htmx || !target) return;
    window.htmx.ajax("GET", url, { target: target, swap: "innerHTML" });
  }

  let pending = null;
  function debounce(fn) {
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () { pending = null; fn(); }, 150);
  }

  function presence(data) {
    document.querySelectorAll("[data-presence]").forEach(function (el) {
      const ref = el.getAttribute("data-presence");
      const names = (data[ref] || []).filter(function (n) {
        return n.replace(/ ✎$/, "") !== body.dataset.me;
      });
      el.textContent = names.length ? (body.dataset.viewing || "") + " " + names.join(", ") : "";
    });
  }

  function connect() {
    const queue = document.querySelector("[data-live]");
    const ticket = document.querySelector("[data-live-ticket]");
    if (!queue && !ticket) return;
    let url = "/events";
    if (ticket) url += "?ticket=" + encodeURIComponent(ticket.getAttribute("data-live-ticket"));
    const source = new EventSource(url);
    source.addEventListener("ticket", function (event) {
      const data = JSON.parse(event.data);
      if (queue) debounce(function () { refresh(queue, queue.getAttribute("data-live")); });
      if (ticket && String(data.ref) === ticket.getAttribute("data-live-ticket")) {
        const notice = document.getElementById("changed");
        if (notice && data.actor !== body.dataset.me) {
          notice.hidden = false;
          notice.querySelector(".what").textContent = data.text;
        }
        const trail = document.querySelector("[data-live-trail]");
        if (trail) refresh(trail, trail.getAttribute("data-live-trail"));
      }
    });
    source.addEventListener("presence", function (event) {
      presence(JSON.parse(event.data));
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Remote images of one message: swap the iframe for the version with images.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-load-images]");
    if (!button) return;
    const frame = document.getElementById(button.getAttribute("data-load-images"));
    if (!frame) return;
    event.preventDefault();
    frame.removeAttribute("srcdoc");
    frame.setAttribute("src", button.getAttribute("data-url"));
    button.disabled = true;
  });

  // Saved replies: insert the chosen text at the cursor of the reply box.
  document.addEventListener("change", function (event) {
    const pick = event.target.closest("select[data-saved-replies]");
    if (!pick || !pick.value) return;
    const box = document.getElementById(pick.getAttribute("data-saved-replies"));
    const option = pick.selectedOptions[0];
    if (!box || !option) return;
    const text = option.getAttribute("data-text") || "";
    const start = box.selectionStart || 0;
    box.value = box.value.slice(0, start) + text + box.value.slice(box.selectionEnd || start);
    box.focus();
    pick.value = "";
  });

  // Tell the others that a reply is being written (presence; advisory).
  let lastTyping = 0;
  document.addEventListener("input", function (event) {
    const box = event.target.closest("textarea[data-typing]");
    if (!box || Date.now() - lastTyping < 5000) return;
    lastTyping = Date.now();
    fetch(box.getAttribute("data-typing"), { method: "POST", credentials: "same-origin" });
  });

  // Drafts: what is typed in a reply or note box survives the page reloading after
  // another action on the ticket (claim, move, a note), kept per browser tab only;
  // sending the form, or logging out, forgets it.
  function drafts() {
    document.querySelectorAll("textarea[data-draft]").forEach(function (box) {
      const key = "draft:" + box.getAttribute("data-draft");
      let kept = null;
      try { kept = window.sessionStorage.getItem(key); } catch (e) { return; }
      if (kept && !box.value) box.value = kept;
      box.addEventListener("input", function () {
        try {
          if (box.value) window.sessionStorage.setItem(key, box.value);
          else window.sessionStorage.removeItem(key);
        } catch (e) { /* storage full or off: the draft is only not kept */ }
      });
      if (box.form) {
        box.form.addEventListener("submit", function () {
          try { window.sessionStorage.removeItem(key); } catch (e) { /* nothing kept */ }
        });
      }
    });
  }
  document.addEventListener("submit", function (event) {
    if (!event.target.closest("form[data-forget-drafts]")) return;
    try { window.sessionStorage.clear(); } catch (e) { /* nothing kept */ }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drafts);
  else drafts();
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
