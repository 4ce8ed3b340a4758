// Ranges of the text to token columns: whose each token is (a chat widget's `roles` trait) and which
// tokens the model wrote (the `generated` trait). Both are ranges in UTF-16 units, as the state's token
// spans are, so no conversion is needed. Pure: the band under the input row and the marks on the input
// tokens are drawn from what this returns (heatmap.ts).

import type { ViewState } from "./payload";

/** A part of the text and whose it is (lens_widget/chat.py): a message's content, or the template's
 * own text (role "template"), special marking one of the tokenizer's special tokens. */
export interface RoleRange {
  role: string;
  start: number;
  end: number;
  special: boolean;
  /** The message whose content this is (an index into `messages`); null for the template's text. */
  message?: number | null;
}

/** The role "template": the chat template's own text between the messages. */
export const TEMPLATE = "template";

/** Calls `visit(column, range, overlap)` for each overlap of the first `n` token spans ([start, end)
 * pairs) with the ordered, disjoint `ranges`, in one pass over both. */
function eachOverlap(ranges: readonly { start: number; end: number }[], spans: ArrayLike<number>, n: number, visit: (column: number, range: number, overlap: number) => void): void {
  let first = 0;
  for (let c = 0; c < n; c++) {
    const start = spans[2 * c] ?? 0;
    const end = spans[2 * c + 1] ?? 0;
    while (first < ranges.length && (ranges[first] as { end: number }).end <= start) first++;
    for (let k = first; k < ranges.length && (ranges[k] as { start: number }).start < end; k++) {
      const r = ranges[k] as { start: number; end: number };
      visit(c, k, Math.min(end, r.end) - Math.max(start, r.start));
    }
  }
}

/** For each of the first `n` token spans, the index of the range that covers most of it (the first of
 * equals), or -1: no range. A token with no text of its own (an added BOS, the first half of a
 * character the model wrote) takes the range it stands in: the last that starts at or before it, if it
 * has not ended there (or ends the text). `ranges` are ordered and disjoint; lens_widget/chat.py's
 * token_roles is the same rule, which the tests hold to the tokenizer's own assistant mask. */
export function coveringRange(ranges: readonly { start: number; end: number }[], spans: ArrayLike<number>, n: number): Int32Array {
  const out = new Int32Array(n).fill(-1);
  const most = new Float64Array(n);
  eachOverlap(ranges, spans, n, (c, k, overlap) => {
    if (overlap > (most[c] as number)) (most[c] = overlap), (out[c] = k);
  });
  for (let c = 0; c < n; c++) {
    const at = spans[2 * c] ?? 0;
    if ((spans[2 * c + 1] ?? 0) !== at) continue;
    let i = -1;
    while (i + 1 < ranges.length && (ranges[i + 1] as { start: number }).start <= at) i++;
    const r = ranges[i];
    out[c] = r && (at < r.end || (at === r.end && i === ranges.length - 1)) ? i : -1;
  }
  return out;
}

/** For each of the first `n` token spans, whether the model wrote at least half of it (`generated`:
 * [start, end, ...] ranges, in any order). */
export function writtenColumns(generated: readonly (readonly number[])[], spans: ArrayLike<number>, n: number): Uint8Array {
  const ranges = generated
    .map(([start = 0, end = 0]) => ({ start, end }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
  const covered = new Float64Array(n);
  eachOverlap(ranges, spans, n, (c, _, overlap) => void (covered[c] = (covered[c] as number) + Math.max(0, overlap)));
  const out = new Uint8Array(n);
  for (let c = 0; c < n; c++) {
    const at = spans[2 * c] ?? 0;
    const width = (spans[2 * c + 1] ?? 0) - at;
    // A token with no text of its own (half a character) is written when it stands in what was written.
    const inside = width === 0 && ranges.some((r) => r.start <= at && at <= r.end);
    out[c] = inside || (width > 0 && 2 * (covered[c] as number) >= width) ? 1 : 0;
  }
  return out;
}

/** What the band and the input row show of each column: its role (null: none), and whether the model
 * wrote it. */
export interface ColumnMarks {
  role: (col: number) => RoleRange | null;
  written: (col: number) => boolean;
  /** The roles present, in order of first appearance, the template's last: the band's key. */
  key: string[];
  /** Whether any column has a role (the band is drawn), is a special token, or was written (the key
   * says so). */
  any: boolean;
  anySpecial: boolean;
  anyWritten: boolean;
}

const cache = new WeakMap<ViewState, { roles: unknown; generated: unknown; marks: ColumnMarks }>();

/** The marks of a state's columns, computed once per state and pair of traits (a redraw while
 * scrolling reads them again; states and traits are replaced, never changed in place). */
export function columnMarks(state: ViewState, roles: readonly RoleRange[], generated: readonly (readonly number[])[]): ColumnMarks {
  const hit = cache.get(state);
  if (hit && hit.roles === roles && hit.generated === generated) return hit.marks;
  const n = state.nTokens;
  const which = coveringRange(roles, state.tokenSpans, n);
  const written = writtenColumns(generated, state.tokenSpans, n);
  const present = new Set<string>();
  let anySpecial = false;
  for (const k of which) {
    if (k < 0) continue;
    present.add((roles[k] as RoleRange).role);
    anySpecial ||= (roles[k] as RoleRange).special === true;
  }
  const key = [...present].filter((r) => r !== TEMPLATE);
  if (present.has(TEMPLATE)) key.push(TEMPLATE);
  const anyWritten = written.some((w) => w === 1);
  const marks: ColumnMarks = {
    role: (col) => (col >= 0 && col < n && (which[col] as number) >= 0 ? (roles[which[col] as number] as RoleRange) : null),
    written: (col) => written[col] === 1,
    key,
    any: present.size > 0,
    anySpecial,
    anyWritten,
  };
  cache.set(state, { roles, generated, marks });
  return marks;
}
