// Whether the heatmap must be painted again. A view redraws on every message the kernel sends, and most
// of them change nothing on screen: a long paste's columns arrive in many chunks, most of them off
// screen; a panel's answer, the snapshot catching up with the deltas. Painting the whole visible grid
// for each of them made a paste cost a paint per chunk rather than per change on screen. A paint is
// now skipped when its inputs (everything a paint draws besides the cells: layout, scroll position,
// colours, statistic, scale, selection, labels) are the same as the last paint's and no column on
// screen changed since (Receiver.changedSince).

import type { Picture } from "./heatmap";
import { effectiveMode, rowIndices, type Scene } from "./picture";

/** What a paint of `p` draws besides the state's cells, as values compared with Object.is. */
export function paintInputs(s: Scene, p: Picture, dpr: number): unknown[] {
  const l = p.layout;
  const marks = p.marks;
  return [
    l.rows, l.cols, l.labelWidth, l.cellWidth, l.cellHeight, l.axisHeight, l.bandHeight, l.width, l.height,
    p.scrollLeft, dpr, p.palette, p.reversed, p.diverging,
    p.scale.min, p.scale.max, p.scale.log, p.scale.fixed,
    p.selected?.row, p.selected?.col, p.pinned,
    p.rowLabels.join("\n"), rowIndices(s).join(","),
    effectiveMode(s), s.statistic, s.diffStatistic, s.colorScale, s.first, s.strings, s.infos, s.roles, s.generated,
    marks ? `${marks.key.join("\n")}|${marks.anySpecial}|${marks.anyWritten}` : null,
  ];
}

export class Repaint {
  private inputs: readonly unknown[] | null = null;
  /** The receiver's state version the canvas shows. */
  private version = -1;

  /** The next paint happens whatever it draws (the canvas may have lost its pixels: resized, hidden
   * and shown again by a host that drops off-screen content, a theme switch). */
  forget(): void {
    this.inputs = null;
  }

  /**
   * Whether to paint: the inputs differ from the last paint's, or a column in `onScreen` ([start,
   * stop) of the state's columns) changed since; `changedSince` is the receiver's. Remembers what the
   * canvas then shows.
   */
  needed(inputs: readonly unknown[], version: number, changedSince: (version: number) => readonly [number, number] | null, onScreen: readonly [number, number]): boolean {
    const last = this.inputs;
    const same = last !== null && last.length === inputs.length && inputs.every((v, i) => Object.is(v, last[i]));
    if (same) {
      const changed = changedSince(this.version);
      if (changed && (changed[0] >= changed[1] || changed[1] <= onScreen[0] || changed[0] >= onScreen[1])) {
        this.version = version; // the pixels on screen are this state's too
        return false;
      }
    }
    this.inputs = inputs;
    this.version = version;
    return true;
  }
}
