// How token strings are shown: whitespace made visible, never interpreted as markup.

import { VISIBLE_TOKENS as VISIBLE } from "./constants";

/** A token as a label: spaces, newlines and tabs become visible marks; the empty string is ∅. */
export function visibleToken(text: string): string {
  if (text === "") return "∅";
  let out = "";
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    out += VISIBLE[ch] ?? (code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : ch);
  }
  return out;
}

/** The longest prefix of `text` (plus an ellipsis) whose measured width fits `maxWidth`. */
export function fitText(text: string, maxWidth: number, measure: (s: string) => number): string {
  if (measure(text) <= maxWidth) return text;
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(chars.slice(0, mid).join("") + "…") <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return lo === 0 ? "" : chars.slice(0, lo).join("") + "…";
}

export function formatProbability(p: number): string {
  if (!Number.isFinite(p)) return "–";
  if (p >= 0.1) return `${(p * 100).toFixed(1)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(2)}%`;
  return p > 0 ? `${p.toExponential(1)}` : "0";
}
