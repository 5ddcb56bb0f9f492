// The RagOrleans page: key, collection, uploads with ingestion status, and chat with citations.
// The key lives in sessionStorage (this tab only) and is never written anywhere else.

import { ApiError, RagApi } from "./api.js";
import { citationButton, citationLabel, renderAnswer } from "./answer.js";

const KEY_STORAGE = "ragorleans.apiKey";
const COLLECTION_STORAGE = "ragorleans.collection";
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const el = {
  connection: $("connection"),
  keyForm: $("key-form"),
  key: $("api-key"),
  forget: $("key-forget"),
  collection: $("collection-select"),
  refresh: $("collection-refresh"),
  collectionInfo: $("collection-info"),
  collectionForm: $("collection-form"),
  newCollection: $("new-collection"),
  create: $("collection-create"),
  uploadForm: $("upload-form"),
  file: $("file-input"),
  upload: $("upload-button"),
  documents: $("documents"),
  documentsEmpty: $("documents-empty"),
  documentsStatus: $("documents-status"),
  messages: $("messages"),
  chatForm: $("chat-form"),
  question: $("question"),
  ask: $("ask"),
  stop: $("stop"),
  newConversation: $("new-conversation"),
  panel: $("citation-panel"),
  panelNumber: $("citation-number"),
  panelTitle: $("citation-title"),
  panelSection: $("citation-section"),
  panelScore: $("citation-score"),
  panelText: $("citation-text"),
  panelClose: $("citation-close"),
};

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  connected: false,
  collection: "",
  // Bumped whenever the collection or key changes, so late answers for the old one are dropped.
  generation: 0,
  documents: new Map(),
  pollTimer: 0,
  conversationId: null,
  chatAbort: null,
  panelOpener: null,
};

const api = new RagApi(() => state.key);

function setStatus(node, text, kind = "") {
  node.textContent = text;
  node.classList.toggle("error", kind === "error");
  node.classList.toggle("ok", kind === "ok");
}

function errorText(e) {
  return e instanceof ApiError ? e.message : "Something went wrong in the page.";
}

// ---- key ---------------------------------------------------------------------------------------

function setConnected(connected) {
  state.connected = connected;
  for (const control of [el.collection, el.refresh, el.newCollection, el.create]) control.disabled = !connected;
  updateCollectionControls();
}

function updateCollectionControls() {
  const ready = state.connected && state.collection !== "";
  for (const control of [el.file, el.upload, el.question, el.ask, el.newConversation]) control.disabled = !ready;
  if (state.chatAbort) el.ask.disabled = true;
}

async function connect() {
  setStatus(el.connection, "Connecting…");
  try {
    const collections = await api.listCollections();
    setConnected(true);
    setStatus(el.connection, "Connected", "ok");
    fillCollections(collections, sessionStorage.getItem(COLLECTION_STORAGE) || "");
  } catch (e) {
    setConnected(false);
    if (e instanceof ApiError && e.status === 403) {
      setStatus(el.connection, "This key cannot read collections: use a tenant admin or user key, not the operator key.", "error");
    } else {
      setStatus(el.connection, errorText(e), "error");
    }
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      sessionStorage.removeItem(KEY_STORAGE);
    }
  }
}

el.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = el.key.value.trim();
  if (!key) return;
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  el.key.value = "";
  resetCollection();
  connect();
});

el.forget.addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  sessionStorage.removeItem(COLLECTION_STORAGE);
  state.key = "";
  el.key.value = "";
  resetCollection();
  el.collection.replaceChildren(new Option("Connect first", ""));
  setConnected(false);
  setStatus(el.connection, "Not connected");
  el.key.focus();
});

// ---- collections -------------------------------------------------------------------------------

function fillCollections(collections, wanted) {
  const list = Array.isArray(collections) ? collections : [];
  el.collection.replaceChildren(new Option(list.length ? "Choose a collection…" : "No collections yet: create one", ""));
  for (const c of list) {
    el.collection.append(new Option(c.name, c.name));
  }
  const pick = list.some((c) => c.name === wanted) ? wanted : list.length === 1 ? list[0].name : "";
  el.collection.value = pick;
  selectCollection(pick, list.find((c) => c.name === pick));
}

function describeCollection(c) {
  if (!c) return "";
  return `${c.documentCount} document${c.documentCount === 1 ? "" : "s"}, ${c.chunkCount} chunk${c.chunkCount === 1 ? "" : "s"}; model ${c.model}`;
}

function resetCollection() {
  state.generation++;
  state.collection = "";
  state.documents.clear();
  state.conversationId = null;
  clearTimeout(state.pollTimer);
  state.chatAbort?.abort();
  el.documents.replaceChildren();
  el.messages.replaceChildren();
  el.collectionInfo.textContent = "";
  closeCitation();
  updateDocumentsEmpty();
}

function selectCollection(name, info) {
  resetCollection();
  state.collection = name;
  if (name) sessionStorage.setItem(COLLECTION_STORAGE, name);
  el.collectionInfo.textContent = describeCollection(info);
  updateCollectionControls();
  if (name) loadDocuments();
}

async function refreshCollections() {
  try {
    fillCollections(await api.listCollections(), state.collection);
  } catch (e) {
    setStatus(el.collectionInfo, errorText(e), "error");
  }
}

el.collection.addEventListener("change", async () => {
  const name = el.collection.value;
  selectCollection(name, null);
  if (!name) return;
  try {
    const generation = state.generation;
    const collections = await api.listCollections();
    if (generation === state.generation) el.collectionInfo.textContent = describeCollection(collections.find((c) => c.name === name));
  } catch {
    // The counts are a nicety; the documents list reports real errors.
  }
});

el.refresh.addEventListener("click", refreshCollections);

el.collectionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = el.newCollection.value.trim();
  if (!name) return;
  el.create.disabled = true;
  setStatus(el.collectionInfo, `Creating ${name}…`);
  try {
    await api.createCollection(name);
    el.newCollection.value = "";
    fillCollections(await api.listCollections(), name);
    setStatus(el.collectionInfo, `Created ${name}.`, "ok");
  } catch (e) {
    setStatus(el.collectionInfo, errorText(e), "error");
  } finally {
    el.create.disabled = !state.connected;
  }
});

// ---- documents ---------------------------------------------------------------------------------

const STEP_LABELS = { received: "received", parsed: "parsed", chunked: "chunked", embedded: "embedded", indexed: "indexed" };

function updateDocumentsEmpty() {
  el.documentsEmpty.hidden = el.documents.children.length > 0;
}

/** The row for `key`, created on first use: name, status, progress. */
function documentRow(key) {
  let row = el.documents.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.key = key;
    const name = document.createElement("th");
    name.scope = "row";
    const status = document.createElement("td");
    status.className = "doc-status";
    const progressCell = document.createElement("td");
    const progress = document.createElement("progress");
    progress.max = 100;
    const percent = document.createElement("span");
    percent.className = "percent";
    progressCell.append(progress, percent);
    row.append(name, status, progressCell);
    el.documents.prepend(row);
    updateDocumentsEmpty();
  }
  return row;
}

function setRow(row, { name, status, statusText, percent, error }) {
  const [nameCell, statusCell, progressCell] = row.children;
  nameCell.textContent = name;
  row.dataset.status = status;
  statusCell.replaceChildren(statusText);
  if (error) {
    const reason = document.createElement("span");
    reason.className = "error reason";
    reason.textContent = error;
    statusCell.append(document.createElement("br"), reason);
  }
  const progress = progressCell.querySelector("progress");
  const label = progressCell.querySelector(".percent");
  progress.setAttribute("aria-label", `Progress of ${name}`);
  if (percent === null || percent === undefined) {
    progress.removeAttribute("value");
    label.textContent = "";
  } else {
    progress.value = percent;
    label.textContent = ` ${Math.round(percent)} %`;
  }
}

function documentName(doc) {
  return doc.title || doc.fileName || doc.id;
}

function showDocument(doc, row = documentRow(doc.id)) {
  const previous = state.documents.get(doc.id);
  state.documents.set(doc.id, doc);
  row.dataset.key = doc.id;
  const name = documentName(doc);
  let statusText;
  let percent;
  switch (doc.status) {
    case "indexed":
      statusText = `indexed (${doc.chunkCount} chunk${doc.chunkCount === 1 ? "" : "s"})`;
      percent = 100;
      break;
    case "failed":
      statusText = "failed";
      percent = doc.progressPercent ?? 0;
      break;
    case "processing":
      statusText = `processing: ${STEP_LABELS[doc.step] || doc.step || "started"}`;
      percent = doc.progressPercent ?? null;
      break;
    default:
      statusText = "queued";
      percent = null;
  }
  if (doc.duplicate) statusText += " — already in the collection";
  setRow(row, { name, status: doc.status, statusText, percent, error: doc.status === "failed" ? doc.error || "No reason given." : null });
  if (previous && previous.status !== doc.status && (doc.status === "indexed" || doc.status === "failed")) {
    el.documentsStatus.textContent = `${name}: ${doc.status}`;
  }
}

async function loadDocuments() {
  const generation = state.generation;
  try {
    const page = await api.listDocuments(state.collection);
    if (generation !== state.generation) return;
    const docs = (page && page.documents) || [];
    // Oldest first, because each new row goes on top.
    docs.sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
    for (const doc of docs) showDocument(doc);
    schedulePoll();
  } catch (e) {
    if (generation === state.generation) setStatus(el.collectionInfo, errorText(e), "error");
  }
}

function pending() {
  return [...state.documents.values()].filter((d) => d.status === "queued" || d.status === "processing");
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  if (pending().length > 0) state.pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  const generation = state.generation;
  const collection = state.collection;
  let waiting = pending();
  if (waiting.length > 5) {
    // A batch in flight: one list call instead of one call per document; only those it missed go one by one.
    try {
      const page = await api.listDocuments(collection);
      if (generation !== state.generation) return;
      for (const doc of (page && page.documents) || []) {
        if (state.documents.has(doc.id)) showDocument(doc);
      }
      const listed = new Set(((page && page.documents) || []).map((d) => d.id));
      waiting = waiting.filter((d) => !listed.has(d.id));
    } catch {
      // Fall back to asking for each one.
    }
  }
  await Promise.all(waiting.map(async (doc) => {
    try {
      const fresh = await api.getDocument(collection, doc.id);
      if (generation === state.generation && fresh) showDocument(fresh);
    } catch (e) {
      if (generation !== state.generation) return;
      if (e instanceof ApiError && e.status === 404) {
        // Deleted meanwhile: stop tracking it.
        state.documents.delete(doc.id);
        el.documents.querySelector(`tr[data-key="${CSS.escape(doc.id)}"]`)?.remove();
        updateDocumentsEmpty();
      }
    }
  }));
  if (generation === state.generation) schedulePoll();
}

let uploadCounter = 0;

async function uploadFile(file) {
  const generation = state.generation;
  const collection = state.collection;
  const row = documentRow(`upload-${++uploadCounter}`);
  const show = (percent) => setRow(row, { name: file.name, status: "uploading", statusText: "uploading", percent });
  show(0);
  try {
    const doc = await api.upload(collection, file, (loaded, total) => show(total > 0 ? (100 * loaded) / total : null)).done;
    if (generation !== state.generation) return;
    const existing = el.documents.querySelector(`tr[data-key="${CSS.escape(doc.id)}"]`);
    if (existing && existing !== row) {
      row.remove();
      showDocument(doc, existing);
    } else {
      showDocument(doc, row);
    }
    schedulePoll();
  } catch (e) {
    if (generation !== state.generation) return;
    row.dataset.key = `failed-${uploadCounter}`;
    setRow(row, { name: file.name, status: "failed", statusText: "upload failed", percent: 0, error: errorText(e) });
    el.documentsStatus.textContent = `${file.name}: upload failed`;
  }
}

el.uploadForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = [...el.file.files];
  if (files.length === 0 || !state.collection) return;
  el.file.value = "";
  // One at a time: the page stays responsive and the server's ingestion queue sees a steady flow.
  for (const file of files) await uploadFile(file);
});

// ---- chat --------------------------------------------------------------------------------------

function message(role) {
  const article = document.createElement("article");
  article.className = `message ${role}`;
  const who = document.createElement("h3");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Answer";
  article.append(who);
  el.messages.append(article);
  return article;
}

function scrollToEnd() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

function openCitation(citation, n, opener) {
  el.panelNumber.textContent = `[${n}]`;
  el.panelTitle.textContent = citation.title || citation.documentId || "Untitled";
  el.panelSection.textContent = citation.section || "—";
  el.panelScore.textContent = typeof citation.score === "number" ? citation.score.toFixed(3) : "—";
  el.panelText.textContent = citation.text || "";
  el.panel.dataset.documentId = citation.documentId || "";
  el.panel.dataset.chunkId = citation.chunkId || "";
  el.panel.hidden = false;
  state.panelOpener?.setAttribute("aria-expanded", "false");
  state.panelOpener = opener;
  opener?.setAttribute("aria-expanded", "true");
  el.panel.focus();
}

function closeCitation() {
  if (el.panel.hidden) return;
  el.panel.hidden = true;
  const opener = state.panelOpener;
  state.panelOpener = null;
  if (opener) {
    opener.setAttribute("aria-expanded", "false");
    if (opener.isConnected) opener.focus();
  }
}

el.panelClose.addEventListener("click", closeCitation);
el.panel.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeCitation();
});

async function ask(text) {
  const generation = state.generation;
  const collection = state.collection;
  const user = message("user");
  const userText = document.createElement("p");
  userText.textContent = text;
  user.append(userText);

  const answer = message("assistant");
  answer.setAttribute("aria-busy", "true");
  const meta = document.createElement("p");
  meta.className = "hint query";
  meta.hidden = true;
  const body = document.createElement("p");
  body.className = "answer-text";
  body.textContent = "…";
  const sources = document.createElement("ol");
  sources.className = "sources";
  sources.setAttribute("aria-label", "Sources");
  const notes = document.createElement("p");
  notes.className = "hint notes";
  notes.hidden = true;
  answer.append(meta, body, sources, notes);
  scrollToEnd();

  const citations = new Map();
  const open = (n, button) => {
    const c = citations.get(n);
    if (c) openCitation(c, n, button);
  };
  let textSoFar = "";
  let frame = 0;
  const render = () => {
    frame = 0;
    renderAnswer(body, textSoFar, citations, open);
    scrollToEnd();
  };

  const controller = new AbortController();
  state.chatAbort = controller;
  el.ask.disabled = true;
  el.stop.hidden = false;
  try {
    await api.chat(collection, text, state.conversationId, {
      onCitations(data) {
        if (generation !== state.generation) return;
        if (data.conversationId) state.conversationId = data.conversationId;
        const shown = data.rewrittenQuery || data.query;
        if (shown && shown.trim() !== text.trim()) {
          meta.textContent = `Searched for: ${shown}`;
          meta.hidden = false;
        }
        for (const c of data.citations || []) {
          citations.set(Number(c.number), c);
          const item = document.createElement("li");
          item.append(citationButton(Number(c.number), c, open, `[${c.number}] ${citationLabel(c)}`));
          sources.append(item);
        }
      },
      onDelta(delta) {
        if (generation !== state.generation) return;
        textSoFar += delta;
        if (!frame) frame = requestAnimationFrame(render);
      },
      onDone(data) {
        if (generation !== state.generation) return;
        if (data.conversationId) state.conversationId = data.conversationId;
        if (typeof data.answer === "string") textSoFar = data.answer;
        const flags = [];
        if (data.provider) flags.push(`answered by ${data.provider}`);
        if (data.fallback) flags.push("the language model was unavailable, so this is the extractive answer");
        if (data.cached) flags.push("from the cache");
        if (flags.length) {
          notes.textContent = flags.join("; ") + ".";
          notes.hidden = false;
        }
      },
    }, controller.signal);
    if (frame) cancelAnimationFrame(frame);
    render();
  } catch (e) {
    if (frame) cancelAnimationFrame(frame);
    if (generation !== state.generation) return;
    if (textSoFar) render();
    else body.textContent = "";
    const error = document.createElement("p");
    error.className = "error";
    error.setAttribute("role", "alert");
    error.textContent = e.name === "AbortError" ? "Stopped." : errorText(e);
    answer.append(error);
  } finally {
    answer.setAttribute("aria-busy", "false");
    if (state.chatAbort === controller) state.chatAbort = null;
    el.stop.hidden = true;
    updateCollectionControls();
    scrollToEnd();
  }
}

el.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.question.value.trim();
  if (!text || state.chatAbort || !state.collection) return;
  el.question.value = "";
  ask(text);
});

el.question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.chatForm.requestSubmit();
  }
});

el.stop.addEventListener("click", () => {
  state.chatAbort?.abort();
  el.question.focus();
});

el.newConversation.addEventListener("click", () => {
  state.chatAbort?.abort();
  state.conversationId = null;
  el.messages.replaceChildren();
  closeCitation();
  el.question.focus();
});

// ---- start -------------------------------------------------------------------------------------

setConnected(false);
updateDocumentsEmpty();
if (state.key) connect();
