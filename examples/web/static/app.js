// ChatVault demo app: plain JavaScript over the /api routes. Every value from the server
// is put on the page with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  current: null, // the open conversation's id
  showArchived: false,
  listCursor: null,
  olderCursor: null,
};

async function api(path, options = {}) {
  const response = await fetch("/api" + path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

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

// ------------------------------------------------------------------ sign-in (demo only)

async function whoAmI() {
  const response = await fetch("/demo/me", { credentials: "same-origin" });
  return response.ok ? (await response.json()).user : null;
}

async function signIn(name) {
  const response = await fetch("/demo/login", json("POST", { user: name }));
  if (!response.ok) throw new Error(await response.text());
}

function showSignedIn() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = `signed in as ${state.user}`;
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
      el("button", { type: "button", onclick: () => openConversation(c.id) },
        title, c.archived ? " (archived)" : "")),
    );
  }
  state.listCursor = page.next_cursor;
  $("more-conversations").hidden = !page.next_cursor;
}

function renderMessage(m) {
  const body = el("div", { class: "content" });
  for (const part of m.parts) {
    if (part.type === "text") body.append(el("span", {}, part.text));
    else if (part.type === "file") body.append(el("span", { class: "file-part" }, ` [file: ${part.filename || part.file_id || part.url}]`));
    else if (part.type === "tool_call") body.append(el("code", {}, ` [tool call: ${part.name}]`));
    else body.append(el("span", { class: "part" }, ` [${part.type}]`));
  }
  const status = m.status === "complete" ? "" : m.status;
  const li = el("li", { class: `message ${m.role}`, dataset: { seq: String(m.seq), id: m.id } },
    el("span", { class: "role" }, m.role, status ? el("span", { class: "status" }, status) : ""),
    body);
  const actions = el("div", { class: "actions" }, versionControls(m));
  const inProgress = m.status === "pending" || m.status === "streaming";
  if (m.role === "user") {
    actions.append(el("button", { type: "button", class: "edit", onclick: () => startEditing(li, m, "edit") }, "Edit"));
  } else if (m.role === "assistant" && !inProgress) {
    actions.append(el("button", { type: "button", class: "regenerate", onclick: () => startEditing(li, m, "regenerate") }, "Regenerate"));
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

async function stepVersion(m, by) {
  const versions = await api(messagePath(m, "siblings"));
  const target = versions.items[versions.index + by];
  if (!target) return;
  await api(messagePath(target, "switch"), { method: "POST" });
  await loadMessages();
}

// Edit a user message, or write a new version of an assistant reply (this demo has no
// model: the person writes it), in place: a textarea with the text, Save and Cancel.
function startEditing(li, m, action) {
  const area = el("textarea", { class: "edit-text", rows: 3, value: m.content });
  const save = guard(async () => {
    const text = area.value;
    if (!text.trim()) return;
    // An edit keeps the message's files; a new reply is text.
    const kept = action === "edit" ? m.parts.filter((p) => p.type === "file") : [];
    const body = kept.length ? { parts: [{ type: "text", text }, ...kept] } : { text };
    await api(messagePath(m, action), json("POST", body));
    await loadMessages();
  });
  li.querySelector(".content").replaceWith(el("div", { class: "editor" }, area,
    el("div", { class: "row" },
      el("button", { type: "button", class: "save", onclick: save }, "Save"),
      el("button", { type: "button", class: "cancel", onclick: guard(() => loadMessages()) }, "Cancel"))));
  li.querySelector(".actions").hidden = true;
  area.focus();
}

async function loadMessages(older = false) {
  const id = state.current;
  const params = new URLSearchParams({ last: "50" });
  if (older && state.olderCursor) params.set("cursor", state.olderCursor);
  const page = await api(`/conversations/${id}/messages?` + params);
  if (id !== state.current) return;
  const list = $("messages");
  const items = page.items.map(renderMessage);
  if (older) list.prepend(...items);
  else list.replaceChildren(...items);
  state.olderCursor = page.next_cursor;
  $("older").hidden = !page.next_cursor;
}

function renderFiles(id, files) {
  $("files").replaceChildren(...files.map((f) =>
    el("li", { class: "file", dataset: { id: f.id } },
      el("a", { href: `/api/conversations/${id}/files/${f.id}/content`, download: f.filename, class: "download" }, f.filename),
      ` ${size(f.size)} ${f.content_type} `,
      el("button", { type: "button", class: "link", onclick: () => copyLink(id, f.id) }, "Share link"),
      el("button", { type: "button", class: "delete", onclick: () => deleteFile(id, f.id) }, "Delete"))));
}

async function openConversation(id) {
  state.current = id;
  state.olderCursor = null;
  history.replaceState(null, "", `#c=${encodeURIComponent(id)}`);
  const detail = await api(`/conversations/${id}`);
  const c = detail.conversation;
  $("conversation").hidden = false;
  $("empty").hidden = true;
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

async function send(event) {
  event.preventDefault();
  const text = $("message-text").value;
  if (!text.trim()) return;
  await api(`/conversations/${state.current}/messages`, json("POST", { role: "user", text }));
  $("message-text").value = "";
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

function guard(fn) {
  return (...args) => fn(...args).catch((e) => say(e.message, true));
}

// ------------------------------------------------------------------ start

async function start() {
  $("login-form").addEventListener("submit", guard(async (event) => {
    event.preventDefault();
    await signIn($("login-name").value.trim());
    state.user = await whoAmI();
    showSignedIn();
    await loadConversations();
  }));
  $("new-conversation").addEventListener("click", guard(newConversation));
  $("more-conversations").addEventListener("click", guard(() => loadConversations(true)));
  $("show-archived").addEventListener("change", guard(async (event) => {
    state.showArchived = event.target.checked;
    await loadConversations();
  }));
  $("rename").addEventListener("click", guard(rename));
  $("archive").addEventListener("click", guard(toggleArchive));
  $("older").addEventListener("click", guard(() => loadMessages(true)));
  $("message-form").addEventListener("submit", guard(send));
  $("upload-form").addEventListener("submit", guard(upload));

  // Deep links: #c=<conversation id>; the demo also takes #user=<name> to sign in.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("user")) await signIn(hash.get("user"));
  state.user = await whoAmI();
  if (!state.user) {
    $("login").hidden = false;
    return;
  }
  showSignedIn();
  if (hash.get("archived") === "1") {
    state.showArchived = true;
    $("show-archived").checked = true;
  }
  state.current = hash.get("c");
  await refresh();
  document.body.dataset.ready = "true";
}

start().catch((e) => say(e.message, true));
