// The cell tooltip: top-k tokens with probability bars, the input token and the real next token.
// Every model string goes in through textContent, never as HTML.

import { Disposer } from "./disposer";
import { assign } from "./dom";
import { type Box, placeTooltip } from "./placement";
import { formatProbability, visibleToken } from "./tokens";

export interface TooltipInfo {
  /** The lens's logits here were NaN or infinite: there is no distribution to describe. */
  invalid?: boolean;
  /** The cell is still being computed: nothing to describe yet. */
  pending?: boolean;
  rowLabel: string;
  col: number;
  statistic: string;
  value: number;
  units: string;
  input: string;
  /** The real next token, its rank and probability under this cell (null at the last column). */
  next: { text: string; rank: number; probability: number } | null;
  top: TopToken[];
  pinned: boolean;
  /** A/B: both models' top-k side by side (`top` and `next` above are model A's), and the pair's
   * statistics (divergences, agreement). */
  compare?: {
    names: [string, string];
    top: TopToken[];
    next: { text: string; rank: number; probability: number } | null;
    pair: { label: string; value: number; units: string }[];
  };
}

/** One of a cell's most likely tokens; `id` lets a click pin it. */
export interface TopToken {
  text: string;
  probability: number;
  id?: number;
}

function div(doc: Document, className: string, text = ""): HTMLDivElement {
  const el = doc.createElement("div");
  el.className = className;
  el.textContent = text;
  return el;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "missing";
  if (!Number.isFinite(value)) return "∞";
  return Math.abs(value) >= 100 ? Math.round(value).toString() : value.toFixed(3);
}

/** Replace the tooltip's content with this cell's. */
export function fillTooltip(el: HTMLElement, info: TooltipInfo): void {
  const doc = el.ownerDocument;
  el.replaceChildren();
  const layer = info.rowLabel === "output" ? "model output" : `layer ${info.rowLabel}`;
  el.appendChild(div(doc, "lw-tip-title", `${layer} · position ${info.col}${info.pinned ? " · pinned (Esc to unpin)" : ""}`));
  el.appendChild(div(doc, "lw-tip-line", `input: ${visibleToken(info.input)}`));
  if (info.invalid) {
    el.appendChild(div(doc, "lw-tip-line lw-tip-invalid", "invalid: the logits here are NaN or infinite (see the notice)"));
    return;
  }
  if (info.pending) {
    el.appendChild(div(doc, "lw-tip-line lw-tip-pending", "computing… (the columns on screen come first)"));
    return;
  }
  // The real next token: with its rank and probability here, or per model in the A/B columns below.
  const next = info.next ? `next: ${visibleToken(info.next.text)}` : "next: none (last position)";
  const odds = info.next && !info.compare ? ` · rank ${rankText(info.next.rank)} · p ${formatProbability(info.next.probability)}` : "";
  el.appendChild(div(doc, "lw-tip-line", next + odds));
  const units = info.units ? ` ${info.units}` : "";
  el.appendChild(div(doc, "lw-tip-line", `${info.statistic}: ${formatValue(info.value)}${units}`));
  if (!info.compare) {
    el.appendChild(topList(doc, info.top, info.pinned));
    return;
  }
  const c = info.compare;
  for (const p of c.pair.filter((p) => p.label !== info.statistic)) el.appendChild(div(doc, "lw-tip-line", `${p.label}: ${formatValue(p.value)}${p.units ? ` ${p.units}` : ""}`));
  const columns = div(doc, "lw-tip-columns");
  [info.top, c.top].forEach((top, i) => {
    const column = div(doc, "lw-tip-column");
    column.appendChild(div(doc, "lw-tip-name", c.names[i] ?? ""));
    const next = i === 0 ? info.next : c.next;
    if (next) column.appendChild(div(doc, "lw-tip-line", `next: rank ${rankText(next.rank)} · p ${formatProbability(next.probability)}`));
    column.appendChild(topList(doc, top, info.pinned));
    columns.appendChild(column);
  });
  el.appendChild(columns);
}

function rankText(rank: number): string {
  return rank >= 65504 ? "≥65504" : String(Math.round(rank));
}

/** The top tokens with their bars; in a clicked cell's tooltip each can be clicked to pin it. */
function topList(doc: Document, top: TopToken[], pinnable: boolean): HTMLDivElement {
  const list = div(doc, "lw-tip-list");
  for (const { text, probability, id } of top) {
    const row = div(doc, "lw-tip-row");
    if (pinnable && id !== undefined) {
      row.dataset.id = String(id);
      row.title = "Click to pin this token: follow it across the layers and colour the cells by its probability";
    }
    row.appendChild(div(doc, "lw-tip-token", visibleToken(text)));
    const bar = div(doc, "lw-tip-bar");
    const fill = div(doc, "lw-tip-fill");
    fill.style.width = `${Math.max(0, Math.min(100, probability * 100)).toFixed(1)}%`;
    bar.appendChild(fill);
    row.appendChild(bar);
    row.appendChild(div(doc, "lw-tip-prob", formatProbability(probability)));
    list.appendChild(row);
  }
  return list;
}

/** The tooltip's element, placed beside its cell inside the widget (placement.ts). */
export class TooltipBox {
  readonly el: HTMLDivElement;
  private readonly disposer = new Disposer();
  private shown = "";

  constructor(
    doc: Document,
    private readonly root: HTMLElement,
    pin: (id: number) => void,
  ) {
    this.el = div(doc, "lw-tooltip");
    this.el.hidden = true;
    root.appendChild(this.el);
    this.disposer.listen(this.el, "click", (event) => {
      const id = (event.target as HTMLElement).closest<HTMLElement>(".lw-tip-row[data-id]")?.dataset.id;
      if (id !== undefined) pin(Number(id));
    });
  }

  show(info: TooltipInfo, cell: Box): void {
    // Rebuilt only when it says something new: every redraw (a panel's answer, a frame) shows it
    // again, and a row replaced between a click's press and release would lose the click.
    const key = JSON.stringify(info);
    if (key !== this.shown || this.el.hidden) fillTooltip(this.el, info);
    this.shown = key;
    this.el.classList.toggle("lw-tip-pinned", info.pinned);
    this.el.hidden = false;
    const tip = { width: this.el.offsetWidth || 300, height: this.el.offsetHeight || 260 };
    const place = placeTooltip(cell, tip, this.root.clientWidth || 600, this.root.clientHeight);
    this.root.style.minHeight = `${place.minHeight}px`;
    this.el.style.left = `${place.left}px`;
    this.el.style.top = `${place.top}px`;
  }

  hide(): void {
    assign(this.el, "hidden", true);
    assign(this.root.style, "minHeight", "");
  }

  dispose(): void {
    this.disposer.dispose();
  }
}
