// UI state of the heatmap: the selected cell and whether its tooltip is pinned. Pure transitions,
// so the keyboard, the mouse and state changes all go through the same few rules.

import type { Cell } from "./heatmap";

export interface Selection {
  cell: Cell | null;
  pinned: boolean;
}

export const NOTHING: Selection = { cell: null, pinned: false };

const MOVES: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

/** The selection after a key, or null when the key is not the heatmap's. The first arrow selects
 * the top-left cell; Enter pins or unpins; Escape clears. */
export function afterKey(s: Selection, key: string, rows: number, cols: number): Selection | null {
  if (key === "Escape") return NOTHING;
  if (key === "Enter") return s.cell ? { cell: s.cell, pinned: !s.pinned } : null;
  const move = MOVES[key];
  if (!move || rows === 0 || cols === 0) return null;
  const from = s.cell ?? { row: 0, col: 0 };
  const step = s.cell ? move : [0, 0];
  return {
    cell: { row: clamp(from.row + (step[0] as number), rows), col: clamp(from.col + (step[1] as number), cols) },
    pinned: s.pinned,
  };
}

/** A click on `cell` (null: outside the grid): pins it, or unpins when it is the pinned one. */
export function afterClick(s: Selection, cell: Cell | null): Selection {
  if (s.pinned && (!cell || same(cell, s.cell))) return { cell: s.cell, pinned: false };
  return cell ? { cell, pinned: true } : s;
}

/** Hovering: follows the pointer unless pinned. */
export function afterHover(s: Selection, cell: Cell | null): Selection {
  return s.pinned ? s : { cell, pinned: false };
}

/** Kept only while the cell still exists (the text shrank, the stride changed). */
export function within(s: Selection, rows: number, cols: number): Selection {
  return s.cell && (s.cell.row >= rows || s.cell.col >= cols) ? NOTHING : s;
}

export function same(a: Cell | null, b: Cell | null): boolean {
  return !!a && !!b && a.row === b.row && a.col === b.col;
}

function clamp(value: number, size: number): number {
  return Math.min(size - 1, Math.max(0, value));
}
