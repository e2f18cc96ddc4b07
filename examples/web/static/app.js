// ChatVault demo app: plain JavaScript over the /api routes and the app's reply routes.
// Every value from the server is put on the page with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  current: null, // the open conversation's id
  showArchived: false,
  listCursor: null,
  olderCursor: null,
};

// The replies followed live: message id -> EventSource.
const live = new Map();

// ------------------------------------------------------------------ talking to the server

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

// An error worth showing to a person: what happened, in words, never a raw id.
class Problem extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function friendly(status, detail) {
  if (status === 401) return "You are signed out. Please sign in again.";
  if (status === 404) return "That is no longer there: it may have been deleted.";
  if (status === 409) {
    const clean = (detail || "").replace(UUID, "").trim();
    return clean && !/revision|conflict/i.test(clean)
      ? `${clean[0].toUpperCase()}${clean.slice(1)}.`
      : "That changed in the meantime. Please try again.";
  }
  if (status === 413) return "That is too large: the server does not take it.";
  if (status >= 500) return "The server had a problem. Please try again in a moment.";
  const clean = (detail || "").replace(UUID, "").replace(/\s+/g, " ").trim();
  return clean ? `That did not work: ${clean}.` : "That did not work.";
}

async function call(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", ...options });
  } catch (_) {
    throw new Problem(0, "Cannot reach the server. Check your connection and try again.");
  }
  if (!response.ok) {
    let detail = "";
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || "";
    } catch (_) { /* not JSON */ }
    if (response.status === 401 && state.user) showSignedOut();
    throw new Problem(response.status, friendly(response.status, detail));
  }
  return response.status === 204 ? null : response.json();
}

const api = (path, options) => call("/api" + path, options);

function json(method, body) {
  return { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

function say(text, error = false) {
  $("status").textContent = text || "";
  $("status").className = error ? "error" : "";
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// The length of `text` in UTF-8 bytes: what the stream's offsets count.
const utf8 = new TextEncoder();
const bytes = (text) => utf8.encode(text).length;

// A message's time: the hour today, the date too otherwise.
function when(iso) {
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function guard(fn) {
  return (...args) => fn(...args).catch((e) => say(e.message, true));
}

// ------------------------------------------------------------------ sign-in (demo only)

async function whoAmI() {
  const response = await fetch("/demo/me", { credentials: "same-origin" });
  return response.ok ? (await response.json()).user : null;
}

async function signIn(name) {
  const response = await fetch("/demo/login", json("POST", { user: name }));
  if (!response.ok) throw new Problem(response.status, `Cannot sign in: ${await response.text()}.`);
}

function showSignedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("whoami").textContent = `signed in as ${state.user}`;
}

// Back to the sign-in screen: nothing of the app stays on the page.
function showSignedOut() {
  stopFollowing();
  Object.assign(state, { user: null, current: null, listCursor: null, olderCursor: null });
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("whoami").textContent = "";
  $("conversations").replaceChildren();
  $("messages").replaceChildren();
  $("files").replaceChildren();
  $("conversation").hidden = true;
  $("empty").hidden = false;
  history.replaceState(null, "", location.pathname);
}

async function signOut() {
  await call("/demo/logout", { method: "POST" });
  showSignedOut();
  say("Signed out.");
}

// ------------------------------------------------------------------ conversations

async function loadConversations(more = false) {
  const params = new URLSearchParams({ limit: "50" });
  if (state.showArchived) params.set("include_archived", "true");
  if (more && state.listCursor) params.set("cursor", state.listCursor);
  const page = await api("/conversations?" + params);
  const list = $("conversations");
  if (!more) list.replaceChildren();
  for (const c of page.items) {
    const title = c.title || "(untitled)";
    list.append(
      el("li", {
        class: [c.id === state.current ? "selected" : "", c.archived ? "archived" : ""].join(" ").trim(),
        dataset: { id: c.id },
      },
      el("button", { type: "button", onclick: guard(() => openConversation(c.id)) },
        title, c.archived ? " (archived)" : "")),
    );
  }
  state.listCursor = page.next_cursor;
  $("more-conversations").hidden = !page.next_cursor;
}

const STATUS_LABELS = {
  pending: "thinking…",
  streaming: "writing…",
  stopped: "stopped",
  failed: "failed",
  interrupted: "interrupted",
};

const inProgress = (m) => m.status === "pending" || m.status === "streaming";

function renderMessage(m) {
  const body = el("div", { class: "content" });
  for (const part of m.parts) {
    if (part.type === "text") body.append(el("span", {}, part.text));
    else if (part.type === "file") body.append(el("span", { class: "file-part" }, ` [file: ${part.filename || "attachment"}]`));
    else if (part.type === "tool_call") body.append(el("code", {}, ` [tool call: ${part.name}]`));
    else if (part.type !== "reasoning") body.append(el("span", { class: "part" }, ` [${part.type}]`));
  }
  // Text arriving live goes here.
  body.append(el("span", { class: "live" }));
  const status = STATUS_LABELS[m.status] || "";
  const meta = el("div", { class: "meta" },
    el("span", { class: "role" }, m.role),
    el("time", { dateTime: m.created_at, title: new Date(m.created_at).toLocaleString() }, when(m.created_at)),
    status ? el("span", { class: `status ${m.status}` }, status) : "");
  const li = el("li", {
    class: `message ${m.role}${inProgress(m) ? " streaming" : ""}`,
    dataset: { seq: String(m.seq), id: m.id, offset: String(bytes(m.content)) },
  }, meta, body);
  if (m.status === "failed" && m.failure) {
    li.append(el("span", { class: "failure" }, `The assistant could not answer: ${m.failure.replace(UUID, "")}`));
  }
  const actions = el("div", { class: "actions" }, versionControls(m));
  if (m.role === "user") {
    actions.append(el("button", { type: "button", class: "edit", onclick: () => startEditing(li, m) }, "Edit"));
  } else if (m.role === "assistant" && inProgress(m)) {
    actions.append(el("button", { type: "button", class: "stop", onclick: guard(() => stopReply(m)) }, "Stop"));
  } else if (m.role === "assistant") {
    actions.append(el("button", { type: "button", class: "regenerate", onclick: guard(() => regenerate(m)) }, "Regenerate"));
  }
  li.append(actions);
  return li;
}

// "< 2/3 >": the versions of a message (its edits or regenerated replies), stepped
// through with the switch route; the page then shows the branch switched to.
function versionControls(m) {
  if (!(m.sibling_count > 1)) return "";
  const step = (by) => guard(() => stepVersion(m, by));
  return el("span", { class: "versions" },
    el("button", { type: "button", class: "prev", title: "previous version", disabled: m.sibling_index === 0, onclick: step(-1) }, "<"),
    el("span", { class: "version" }, `${m.sibling_index + 1}/${m.sibling_count}`),
    el("button", { type: "button", class: "next", title: "next version", disabled: m.sibling_index + 1 >= m.sibling_count, onclick: step(1) }, ">"));
}

function messagePath(m, action) {
  return `/conversations/${state.current}/messages/${encodeURIComponent(m.id)}/${action}`;
}

const messageItem = (id) => $("messages").querySelector(`li[data-id="${CSS.escape(id)}"]`);

async function stepVersion(m, by) {
  const versions = await api(messagePath(m, "siblings"));
  const target = versions.items[versions.index + by];
  if (!target) return;
  await api(messagePath(target, "switch"), { method: "POST" });
  await loadMessages();
}

// Edit a question in place (a textarea, Save and Cancel): the edit is a new version of
// it, and the assistant answers it.
function startEditing(li, m) {
  const area = el("textarea", { class: "edit-text", rows: 3, value: m.content });
  const save = guard(async () => {
    const text = area.value;
    if (!text.trim()) return;
    // An edit keeps the message's files.
    const kept = m.parts.filter((p) => p.type === "file");
    const body = kept.length ? { parts: [{ type: "text", text }, ...kept] } : { text };
    await api(messagePath(m, "edit"), json("POST", body));
    await askForReply();
    await loadMessages();
  });
  li.querySelector(".content").replaceWith(el("div", { class: "editor" }, area,
    el("div", { class: "row" },
      el("button", { type: "button", class: "save", onclick: save }, "Save"),
      el("button", { type: "button", class: "cancel", onclick: guard(() => loadMessages()) }, "Cancel"))));
  li.querySelector(".actions").hidden = true;
  area.focus();
}

// ------------------------------------------------------------------ live replies

function stopFollowing() {
  for (const source of live.values()) source.close();
  live.clear();
}

// Follows a reply while it streams, from the text the page shows: each `delta` event
// adds text, `end` shows the finished message. The browser reconnects by itself after a
// network error, with the last event id (an offset), so nothing is lost or repeated; a
// 204 (nothing streams any more) closes the stream, and the page reads the message.
function follow(m) {
  const url = `/api${messagePath(m, "stream")}?offset=${bytes(m.content)}`;
  const source = new EventSource(url);
  live.set(m.id, source);
  const done = () => {
    source.close();
    if (live.get(m.id) === source) live.delete(m.id);
  };
  source.addEventListener("delta", (event) => {
    const li = messageItem(m.id);
    if (!li) return done();
    const delta = JSON.parse(event.data);
    const shown = Number(li.dataset.offset);
    if (delta.offset !== shown) {
      // The page and the stream disagree (the list was reloaded meanwhile): start over.
      done();
      loadMessages().catch((e) => say(e.message, true));
      return;
    }
    li.querySelector(".content .live").append(delta.text);
    li.dataset.offset = String(shown + bytes(delta.text));
    const status = li.querySelector(".status");
    if (status) status.textContent = STATUS_LABELS.streaming;
  });
  source.addEventListener("end", (event) => {
    done();
    const li = messageItem(m.id);
    if (li) li.replaceWith(renderMessage(JSON.parse(event.data)));
  });
  source.addEventListener("error", (event) => {
    if (event.data) {
      // The server could not read the reply any more.
      done();
      say("The reply could not be followed any further; reload to see it.", true);
    } else if (source.readyState === EventSource.CLOSED) {
      done();
      loadMessages().catch((e) => say(e.message, true));
    }
  });
}

async function stopReply(m) {
  const stopped = await api(messagePath(m, "stop"), { method: "POST" });
  const source = live.get(m.id);
  if (source) source.close();
  live.delete(m.id);
  const li = messageItem(m.id);
  if (li) li.replaceWith(renderMessage(stopped));
}

// Asks the assistant to answer the question that ends the active branch.
async function askForReply() {
  await call(`/app/conversations/${state.current}/reply`, { method: "POST" });
}

async function regenerate(m) {
  await call(`/app${messagePath(m, "regenerate")}`, { method: "POST" });
  await loadMessages();
}

// ------------------------------------------------------------------ one conversation

async function loadMessages(older = false) {
  const id = state.current;
  const params = new URLSearchParams({ last: "50" });
  if (older && state.olderCursor) params.set("cursor", state.olderCursor);
  const page = await api(`/conversations/${id}/messages?` + params);
  if (id !== state.current) return;
  const list = $("messages");
  const items = page.items.map(renderMessage);
  if (!older) stopFollowing();
  if (older) list.prepend(...items);
  else list.replaceChildren(...items);
  for (const m of page.items) {
    if (inProgress(m) && !live.has(m.id)) follow(m);
  }
  state.olderCursor = page.next_cursor;
  $("older").hidden = !page.next_cursor;
}

function renderFiles(id, files) {
  $("files").replaceChildren(...files.map((f) =>
    el("li", { class: "file", dataset: { id: f.id } },
      el("a", { href: `/api/conversations/${id}/files/${f.id}/content`, download: f.filename, class: "download" }, f.filename),
      ` ${size(f.size)} ${f.content_type} `,
      el("button", { type: "button", class: "link", onclick: guard(() => copyLink(id, f.id)) }, "Share link"),
      el("button", { type: "button", class: "delete", onclick: guard(() => deleteFile(id, f.id)) }, "Delete"))));
}

function closeConversation() {
  stopFollowing();
  state.current = null;
  state.olderCursor = null;
  history.replaceState(null, "", location.pathname);
  $("conversation").hidden = true;
  $("delete-confirm").hidden = true;
  $("empty").hidden = false;
  $("messages").replaceChildren();
  $("files").replaceChildren();
}

async function openConversation(id) {
  const switching = id !== state.current;
  state.current = id;
  if (switching) state.olderCursor = null;
  history.replaceState(null, "", `#c=${encodeURIComponent(id)}`);
  let detail;
  try {
    detail = await api(`/conversations/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      closeConversation();
      throw new Problem(404, "That conversation was not found: it may have been deleted.");
    }
    throw e;
  }
  const c = detail.conversation;
  $("conversation").hidden = false;
  $("empty").hidden = true;
  if (switching) $("delete-confirm").hidden = true;
  $("title").textContent = c.title || "(untitled)";
  $("archived-badge").hidden = !c.archived;
  $("archive").textContent = c.archived ? "Unarchive" : "Archive";
  $("archive").dataset.archived = String(c.archived);
  $("rename-input").value = c.title || "";
  renderFiles(id, detail.files);
  await loadMessages();
  for (const li of $("conversations").children) {
    li.classList.toggle("selected", li.dataset.id === id);
  }
}

async function refresh() {
  await loadConversations();
  if (state.current) await openConversation(state.current);
}

// ------------------------------------------------------------------ actions

async function newConversation() {
  const c = await api("/conversations", json("POST", {}));
  state.current = c.id;
  await refresh();
  $("message-text").focus();
}

async function rename() {
  const title = $("rename-input").value.trim();
  if (!title) return;
  await api(`/conversations/${state.current}`, json("PATCH", { title }));
  await refresh();
}

async function toggleArchive() {
  const archived = $("archive").dataset.archived === "true";
  await api(`/conversations/${state.current}/${archived ? "unarchive" : "archive"}`, { method: "POST" });
  await refresh();
}

async function deleteConversation() {
  await api(`/conversations/${state.current}`, { method: "DELETE" });
  closeConversation();
  await loadConversations();
  say("Conversation deleted.");
}

async function send(event) {
  event.preventDefault();
  const text = $("message-text").value;
  if (!text.trim()) return;
  await api(`/conversations/${state.current}/messages`, json("POST", { role: "user", text }));
  $("message-text").value = "";
  say("");
  await askForReply();
  await refresh();
}

async function upload(event) {
  event.preventDefault();
  const input = $("upload-input");
  if (!input.files.length) return;
  const form = new FormData();
  form.append("file", input.files[0], input.files[0].name);
  say("uploading...");
  await api(`/conversations/${state.current}/files`, { method: "POST", body: form });
  input.value = "";
  say("");
  await refresh();
}

async function copyLink(id, fileId) {
  const link = await api(`/conversations/${id}/files/${fileId}/url`);
  const url = new URL(link.url, location.href).href;
  say(`Link (works until ${new Date(link.expires_at).toLocaleString()}): ${url}`);
  try { await navigator.clipboard.writeText(url); } catch (_) { /* not allowed here */ }
}

async function deleteFile(id, fileId) {
  await api(`/conversations/${id}/files/${fileId}`, { method: "DELETE" });
  await refresh();
}

// ------------------------------------------------------------------ start

async function start() {
  $("login-form").addEventListener("submit", guard(async (event) => {
    event.preventDefault();
    await signIn($("login-name").value.trim());
    state.user = await whoAmI();
    showSignedIn();
    say("");
    await loadConversations();
  }));
  $("sign-out").addEventListener("click", guard(signOut));
  $("new-conversation").addEventListener("click", guard(newConversation));
  $("more-conversations").addEventListener("click", guard(() => loadConversations(true)));
  $("show-archived").addEventListener("change", guard(async (event) => {
    state.showArchived = event.target.checked;
    await loadConversations();
  }));
  $("rename").addEventListener("click", guard(rename));
  $("archive").addEventListener("click", guard(toggleArchive));
  $("delete").addEventListener("click", () => { $("delete-confirm").hidden = false; });
  $("delete-no").addEventListener("click", () => { $("delete-confirm").hidden = true; });
  $("delete-yes").addEventListener("click", guard(deleteConversation));
  $("older").addEventListener("click", guard(() => loadMessages(true)));
  $("message-form").addEventListener("submit", guard(send));
  $("upload-form").addEventListener("submit", guard(upload));

  // Deep links: #c=<conversation id>; the demo also takes #user=<name> to sign in.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("user")) await signIn(hash.get("user"));
  state.user = await whoAmI();
  if (!state.user) {
    $("login").hidden = false;
    document.body.dataset.ready = "true";
    return;
  }
  showSignedIn();
  if (hash.get("archived") === "1") {
    state.showArchived = true;
    $("show-archived").checked = true;
  }
  state.current = hash.get("c");
  try {
    await refresh();
  } finally {
    document.body.dataset.ready = "true";
  }
}

start().catch((e) => say(e.message, true));
