// Renders answer text with its [n] markers as buttons that reveal citation n. Only text nodes are
// created from server data (never HTML), so an answer cannot inject markup.

const MARKER = /\[(\d{1,3})\]/g;

/** A citation's label, e.g. "Timers — Reminders". */
export function citationLabel(citation) {
  const title = citation.title || citation.documentId || "Untitled";
  return citation.section ? `${title} — ${citation.section}` : title;
}

/**
 * Replaces the children of `target` with `text`, turning each [n] that names a known citation into a
 * button; an unknown n stays plain text (e.g. a marker the model invented, or one still streaming).
 * @param {HTMLElement} target
 * @param {string} text
 * @param {Map<number, object>} citations by number
 * @param {(n: number, button: HTMLElement) => void} open
 */
export function renderAnswer(target, text, citations, open) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const n = Number(match[1]);
    const citation = citations.get(n);
    if (!citation) continue;
    if (match.index > last) fragment.append(text.slice(last, match.index));
    fragment.append(citationButton(n, citation, open));
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  target.replaceChildren(fragment);
}

/** A button showing "[n]" that opens citation n. */
export function citationButton(n, citation, open, text = `[${n}]`) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "cite";
  button.dataset.citation = String(n);
  button.textContent = text;
  button.setAttribute("aria-label", `Source ${n}: ${citationLabel(citation)}`);
  button.addEventListener("click", () => open(n, button));
  return button;
}
