// Which columns the view shows, and which column the text cursor is in: what the kernel needs to send
// the columns on screen first, and what keeps the heatmap following the caret while the user types.

/** The column of the token the caret sits after (the one just typed), or the first column at the
 * start of the text; null with no tokens. `spans` is [T][2] flattened, UTF-16 offsets. */
export function caretColumn(spans: Uint32Array, count: number, caret: number): number | null {
  if (count === 0) return null;
  // The last token that starts before the caret (spans are sorted by start).
  let lo = 0;
  let hi = count - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((spans[2 * mid] as number) < caret) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}
