// Server-sent events read from a fetch() body. EventSource cannot send a POST body or an Authorization
// header, so the page parses the stream itself, following the WHATWG event-stream rules.

/**
 * Yields { event, data, id } for each event in the stream: `event` defaults to "message" and `data` joins
 * the event's data lines with "\n". Lines may end in CRLF, LF or CR, split anywhere across chunks.
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<{event: string, data: string, id: string}>}
 */
export async function* readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = "";
  let data = [];
  let id = "";
  let first = true;
  let finished = false;

  // Returns the event to dispatch when `line` completes one.
  const feed = (line) => {
    if (line === "") {
      const out = data.length > 0 ? { event: event || "message", data: data.join("\n"), id } : null;
      event = "";
      data = [];
      return out;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
    return null;
  };

  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      if (first && buffer.length > 0) {
        if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
        first = false;
      }
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        if (!match) break;
        // A CR at the very end may be the first half of a CRLF still in flight.
        if (match[0] === "\r" && match.index === buffer.length - 1 && !done) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        const out = feed(line);
        if (out) yield out;
      }
      if (done) {
        // A server that closes without the final blank line still meant its last event.
        if (buffer.length > 0) feed(buffer);
        const out = feed("");
        finished = true;
        if (out) yield out;
        return;
      }
    }
  } finally {
    // A consumer that stops early closes the connection, which tells the server to stop generating.
    if (!finished) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
