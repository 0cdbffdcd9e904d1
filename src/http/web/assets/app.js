// mailfeed's page: reads the read-only API of the server it came from.
// Every value from the archive is inserted with textContent, never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_LINES = 1000;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) {
    $("token-form").hidden = false;
    throw new Error("a token is needed");
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// ---- token (only when the listener asks for one) ----
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  document.cookie = "mailfeed_token=" + encodeURIComponent($("token").value) +
    "; path=/; SameSite=Strict";
  location.reload();
});

// ---- folders, live ----
const accounts = new Set();
function folderState(f) {
  if (f.last_error && (!f.last_sync_at || (f.last_error_at || "") >= f.last_sync_at)) return "failing";
  if (f.last_sync_at) return "synced";
  return "not synced yet";
}
function showFolders(rows) {
  const tb = $("folder-table").tBodies[0];
  tb.replaceChildren();
  for (const f of rows) {
    const state = folderState(f);
    const tr = el("tr", null, state === "failing" ? "failing" : "");
    for (const v of [f.account, f.mailbox, state, f.uidvalidity ?? "–", f.last_uid, f.stored,
                     f.expunged, f.last_sync_at ?? "never", f.last_error ?? ""]) {
      tr.append(el("td", v));
    }
    tb.append(tr);
    if (!accounts.has(f.account)) {
      accounts.add(f.account);
      $("conv-account").append(el("option", f.account));
    }
  }
}
function followStatus() {
  const es = new EventSource("/api/v1/status/live");
  es.addEventListener("status", (ev) => {
    const rows = JSON.parse(ev.data);
    if (Array.isArray(rows)) showFolders(rows);
    $("live-state").textContent = "live · updated " + new Date().toLocaleTimeString();
  });
  es.onerror = () => { $("live-state").textContent = "reconnecting…"; };
}

// ---- search ----
function fromOf(m) {
  if (m.from_name && m.from_address) return m.from_name + " <" + m.from_address + ">";
  return m.from_address || m.from_name || "–";
}
$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  const tb = $("results").tBodies[0];
  $("search-error").textContent = "";
  tb.replaceChildren();
  if (!q) return;
  try {
    const r = await api("/api/v1/search?q=" + encodeURIComponent(q));
    if (r.messages.length === 0) $("search-error").textContent = "No messages match.";
    for (const m of r.messages) {
      const tr = el("tr");
      tr.dataset.id = m.id;
      tr.append(el("td", (m.sent_at || m.internal_date || "").slice(0, 16)),
                el("td", fromOf(m)), el("td", m.subject || "(no subject)"),
                el("td", m.account + "/" + m.mailbox), el("td", m.snippet || "", "muted"));
      tr.addEventListener("click", () => openMessage(m.id));
      tb.append(tr);
    }
  } catch (e) {
    $("search-error").textContent = e.message;
  }
});

// ---- one message ----
let current = null;
async function openMessage(id) {
  const m = await api("/api/v1/messages/" + encodeURIComponent(id));
  current = m;
  $("message").hidden = false;
  $("message").dataset.id = m.id;
  $("msg-subject").textContent = m.subject || "(no subject)";
  $("msg-raw").href = "/api/v1/messages/" + m.id + "/raw";
  $("msg-flags").textContent = (m.flags || "no flags") + (m.expunged ? " · expunged from the server" : "");
  const hb = $("msg-headers").tBodies[0];
  hb.replaceChildren();
  for (const [name, value] of m.headers) {
    const tr = el("tr");
    tr.append(el("th", name), el("td", value));
    hb.append(tr);
  }
  const ul = $("msg-attachments");
  ul.replaceChildren();
  if (m.attachments.length === 0) ul.append(el("li", "none", "muted"));
  for (const a of m.attachments) {
    const li = el("li");
    const link = el("a", a.filename || "(unnamed " + a.content_type + ")");
    link.href = "/api/v1/attachments/" + a.sha256;
    link.className = "attachment";
    link.setAttribute("download", "");
    li.append(link, el("span", " " + a.content_type + ", " + a.size + " bytes", "muted"));
    ul.append(li);
  }
  $("msg-text").textContent = m.text || "(no text body)";
  showHtml(false);
  $("message").scrollIntoView();
}
function showHtml(remoteImages) {
  const frame = $("msg-html");
  if (!current || !current.html) {
    frame.removeAttribute("src");
    frame.hidden = true;
    $("load-images").hidden = true;
    return;
  }
  frame.hidden = false;
  $("load-images").hidden = remoteImages;
  frame.src = "/api/v1/messages/" + current.id + "/html" + (remoteImages ? "?remote_images=1" : "");
}
$("load-images").addEventListener("click", () => showHtml(true));

// ---- the live conversation ----
let conv = null;
function followConversation() {
  if (conv) conv.close();
  const account = $("conv-account").value;
  const lines = $("conv-lines");
  lines.replaceChildren();
  conv = new EventSource("/api/v1/conversation/live" + (account ? "?account=" + encodeURIComponent(account) : ""));
  conv.addEventListener("open", () => { $("conv-state").textContent = "live"; });
  conv.addEventListener("line", (ev) => {
    const l = JSON.parse(ev.data);
    const prefix = l.kind === "note" ? "-- " : l.kind + ": ";
    const div = el("div", null, "line " + l.kind);
    div.title = l.at + " · " + l.account + " · connection " + l.connection;
    div.append(el("span", prefix + l.text, "text"));
    if (l.meaning) div.append(el("span", "↳ " + l.meaning, "meaning"));
    lines.append(div);
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    lines.scrollTop = lines.scrollHeight;
  });
  conv.addEventListener("lagged", (ev) => {
    lines.append(el("div", "… " + JSON.parse(ev.data).missed + " lines skipped (the page fell behind)", "line lagged"));
  });
  conv.onerror = async () => {
    // serve has no conversation: say so instead of retrying forever.
    const r = await fetch("/api/v1/conversation/live?probe=1", { method: "HEAD" }).catch(() => null);
    if (r && r.status === 404) {
      conv.close();
      $("conv-state").textContent = "no live conversation: this process does not sync (mailfeed serve)";
    } else {
      $("conv-state").textContent = "reconnecting…";
    }
  };
}
$("conv-account").addEventListener("change", followConversation);

// Ask once before opening the streams: a listener that needs a token
// answers 401, and the page asks for it instead of retrying forever.
api("/api/v1/status")
  .then((rows) => {
    showFolders(rows);
    followStatus();
    followConversation();
  })
  .catch((e) => { $("live-state").textContent = e.message; });
