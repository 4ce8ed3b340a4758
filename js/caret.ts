// The heatmap follows the text cursor: after an edit or a cursor move, the column under the cursor is
// scrolled into view, until the user scrolls it out of view themselves (then the heatmap stays where
// they put it, until they move the cursor again).

import { caretColumn } from "./columns";
import { type Layout, scrollToShow } from "./heatmap";
import type { Scene } from "./picture";

export class CaretFollower {
  /** The cursor's offset in the text after the last edit or move. */
  private caret: number | null = null;
  private following = true;
  /** Moved since the last draw: only then does the heatmap scroll. */
  private moved = false;
  /** The next scroll event is the one this follower caused. */
  private ours = false;

  /** The user typed: follow the cursor if it was followed. */
  typed(offset: number): void {
    this.caret = offset;
    this.moved = true;
  }

  /** The user moved the cursor (a click, the arrow keys): follow it again. */
  placed(offset: number): void {
    this.caret = offset;
    this.following = true;
    this.moved = true;
  }

  /** The cursor's column, when the scene has one. */
  column(s: Scene): number | null {
    return this.caret === null ? null : caretColumn(s.state.tokenSpans, s.state.nTokens, this.caret);
  }

  /** Where to scroll so that the cursor's column shows (once per move), or null to stay. While the
   * picture is older than the typing (`caughtUp` false: the kernel has not answered the edit yet), the
   * move stays to be followed again once it is: Enter's new column comes with the kernel's answer. */
  scrollTo(s: Scene, layout: Layout, scrollLeft: number, caughtUp = true): number | null {
    if (!this.moved) return null;
    this.moved = !caughtUp;
    const col = this.following ? this.column(s) : null;
    if (col === null || col < s.first || col >= s.first + s.count) return null;
    const next = scrollToShow(layout, col - s.first, scrollLeft);
    if (Math.abs(next - scrollLeft) < 0.5) return null;
    this.ours = true;
    return next;
  }

  /** A scroll happened, with columns [start, stop) now on screen: the user's, unless we caused it;
   * the user's keeps following only while the cursor's column stays in view. */
  scrolled(s: Scene | null, start: number, stop: number): void {
    if (this.ours) {
      this.ours = false;
      return;
    }
    const col = s ? this.column(s) : null;
    if (col !== null) this.following = col >= start && col < stop;
  }
}
