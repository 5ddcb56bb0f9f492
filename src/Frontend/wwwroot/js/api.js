// Calls to the RagOrleans HTTP API with the user's key as a bearer token. Errors are RFC 7807 problem
// details; ApiError carries their message so the page can show it as is.

import { readEvents } from "./sse.js";

/** An API call that failed, with the server's problem details when it sent them. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} message what to show the user
   * @param {object|null} problem the problem details body
   */
  constructor(status, message, problem = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

const enc = encodeURIComponent;

function problemMessage(status, problem, fallback) {
  if (problem && typeof problem === "object") {
    const text = problem.detail || problem.title;
    if (text) return String(text);
  }
  if (status === 401) return "The API key is missing, invalid or revoked.";
  if (status === 403) return "This key is not allowed to do that.";
  if (status === 429) return "Too many requests; try again shortly.";
  return fallback || `The server answered ${status}.`;
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function errorFrom(response) {
  const problem = parseJson(await response.text().catch(() => ""));
  return new ApiError(response.status, problemMessage(response.status, problem, response.statusText), problem);
}

function isJson(contentType) {
  return /^application\/([\w.+-]*\+)?json/i.test(contentType || "");
}

/** A client bound to a key getter, so a changed key applies to the next call. */
export class RagApi {
  /** @param {() => string} key */
  constructor(key) {
    this.key = key;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key()}`, ...extra };
  }

  async request(method, path, body, signal) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: this.headers(body === undefined ? { Accept: "application/json" } : { Accept: "application/json", "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "The server could not be reached.");
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return null;
    return parseJson(await response.text());
  }

  listCollections() {
    return this.request("GET", "/v1/collections");
  }

  createCollection(name) {
    return this.request("POST", "/v1/collections", { name });
  }

  listDocuments(collection) {
    return this.request("GET", `/v1/collections/${enc(collection)}/documents?limit=200`);
  }

  getDocument(collection, id) {
    return this.request("GET", `/v1/collections/${enc(collection)}/documents/${enc(id)}`);
  }

  /**
   * Uploads one file as multipart/form-data; XMLHttpRequest because fetch reports no upload progress.
   * @param {(loaded: number, total: number) => void} onProgress
   * @returns {{ done: Promise<object>, abort: () => void }}
   */
  upload(collection, file, onProgress) {
    const xhr = new XMLHttpRequest();
    const done = new Promise((resolve, reject) => {
      xhr.open("POST", `/v1/collections/${enc(collection)}/documents`);
      for (const [name, value] of Object.entries(this.headers({ Accept: "application/json" }))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      });
      xhr.addEventListener("load", () => {
        const body = parseJson(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(file.size, file.size);
          resolve(body);
        } else {
          reject(new ApiError(xhr.status, problemMessage(xhr.status, body, xhr.statusText), body));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "The upload failed: the connection was lost.")));
      xhr.addEventListener("abort", () => reject(new ApiError(0, "The upload was cancelled.")));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
    return { done, abort: () => xhr.abort() };
  }

  /**
   * Asks a question. Streams when the server answers with text/event-stream; otherwise the whole JSON
   * answer arrives at once. Either way the handlers see the same sequence: citations, text, done.
   * @param {{ onCitations: (c: object) => void, onDelta: (text: string) => void, onDone: (d: object) => void }} on
   */
  async chat(collection, message, conversationId, on, signal) {
    const body = { message, stream: true };
    if (conversationId) body.conversationId = conversationId;
    let response;
    try {
      response = await fetch(`/v1/collections/${enc(collection)}/chat`, {
        method: "POST",
        headers: this.headers({ Accept: "text/event-stream, application/json;q=0.9", "Content-Type": "application/json" }),
        body: JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "The server could not be reached.");
    }
    if (!response.ok) throw await errorFrom(response);

    const type = response.headers.get("Content-Type") || "";
    if (/^text\/event-stream/i.test(type) && response.body) {
      let finished = false;
      for await (const e of readEvents(response.body)) {
        const data = parseJson(e.data);
        if (e.event === "citations") on.onCitations(data || {});
        else if (e.event === "delta") on.onDelta((data && typeof data.text === "string") ? data.text : "");
        else if (e.event === "done") {
          finished = true;
          on.onDone(data || {});
        } else if (e.event === "error") {
          const status = (data && data.status) || 500;
          throw new ApiError(status, problemMessage(status, data, "The answer failed."), data);
        }
      }
      if (!finished) throw new ApiError(0, "The answer was interrupted before it finished.");
      return;
    }

    if (!isJson(type)) throw new ApiError(response.status, `Unexpected response type '${type}'.`);
    const data = parseJson(await response.text()) || {};
    on.onCitations({
      conversationId: data.conversationId,
      query: data.query,
      rewrittenQuery: data.rewrittenQuery,
      citations: data.citations || [],
    });
    if (typeof data.answer === "string") on.onDelta(data.answer);
    on.onDone(data);
  }
}
