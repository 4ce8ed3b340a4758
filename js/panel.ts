// The trajectory panel under the heatmap: one column's pinned items (or its top-1 tokens) across the
// layers, a line per model and lens. It asks the kernel for the column it is told to follow (debounced,
// and only the newest answer is drawn), or reads a saved state when there is no kernel. Model strings
// go in as textContent or canvas text only.

import { Disposer } from "./disposer";
import { assign, element } from "./dom";
import type { Palette } from "./theme";
import { type ColumnAnswer, drawPanel, type Series, seriesOf, type YKind } from "./trajectory";
import { visibleToken } from "./tokens";

/** How long the panel waits for the selection to settle before asking the kernel for a column. */
export const COLUMN_DEBOUNCE_MS = 80;
const HEIGHT = 150;

export interface PanelHandlers {
  /** Ask the kernel for a column (and the tokens whose text starts with `query`); the answer comes
   * back through `answer`. */
  request(col: number, seq: number, query: string): void;
  /** Pin token ids, or a word (its token set). */
  pin(items: (number | string)[]): void;
  unpin(label: string): void;
}

export class Panel {
  readonly root: HTMLDivElement;
  private readonly heading: HTMLSpanElement;
  private readonly ySelect: HTMLSelectElement;
  readonly canvas: HTMLCanvasElement;
  private readonly key: HTMLDivElement;
  private readonly search: HTMLInputElement;
  private readonly found: HTMLDivElement;
  private readonly disposer = new Disposer();
  private readonly debounce: ReturnType<Disposer["timer"]>;
  private seq = 0;
  private wanted = "";
  private col: number | null = null;
  private shown: ColumnAnswer | null = null;
  /** What the panel last drew from (null: draw at the next paint). */
  private painted: unknown[] | null = null;

  constructor(
    private readonly doc: Document,
    parent: HTMLElement,
    private readonly handlers: PanelHandlers,
    private readonly redraw: () => void,
  ) {
    this.root = element(doc, "div", "lw-panel", parent);
    const head = element(doc, "div", "lw-panel-head", this.root);
    this.heading = element(doc, "span", "lw-panel-title", head);
    this.search = element(doc, "input", "lw-panel-search", head);
    Object.assign(this.search, { type: "search", placeholder: "find a token…", spellcheck: false });
    this.search.title = "Tokens of the vocabulary that begin with this text, by their best probability at any layer of this column; click one to pin it, or press Enter to pin the word's token set";
    const label = element(doc, "label", "lw-panel-y", head);
    label.append("y");
    this.ySelect = element(doc, "select", "lw-panel-y-select", label);
    for (const [value, text] of [["probability", "probability"], ["logprob", "log-probability"], ["rank", "rank"]]) {
      const option = element(doc, "option", "", this.ySelect);
      option.value = value as string;
      option.textContent = text as string;
    }
    this.canvas = element(doc, "canvas", "lw-panel-canvas", this.root);
    this.found = element(doc, "div", "lw-panel-found", this.root);
    this.key = element(doc, "div", "lw-panel-key", this.root);
    this.debounce = this.disposer.timer();
    this.disposer.listen(this.ySelect, "change", () => this.redraw());
    this.disposer.listen(this.search, "input", () => this.ask());
    this.disposer.listen(this.search, "keydown", (event) => {
      const word = this.search.value.trim();
      if (event.key !== "Enter" || !word) return;
      this.handlers.pin([word]);
      this.search.value = "";
      this.ask();
    });
    this.disposer.listen(this.found, "click", (event) => {
      const id = (event.target as HTMLElement).closest<HTMLElement>("button[data-id]")?.dataset.id;
      if (id === undefined) return;
      this.handlers.pin([Number(id)]);
      this.search.value = "";
      this.ask();
    });
    this.disposer.listen(this.key, "click", (event) => {
      const label = (event.target as HTMLElement).closest<HTMLElement>("button[data-unpin]")?.dataset.unpin;
      if (label !== undefined) this.handlers.unpin(label);
    });
  }

  get y(): YKind {
    return this.ySelect.value as YKind;
  }

  /** Follow column `col` of the state with sequence number `stateSeq`: ask again when either changed. */
  follow(col: number | null, stateSeq: number): void {
    const want = col === null ? "" : `${col}|${stateSeq}`;
    if (want === this.wanted) return;
    this.wanted = want;
    this.col = col;
    this.ask();
  }

  /** Ask for the followed column with the search box's query, once typing and hovering settle. */
  private ask(): void {
    this.debounce.clear();
    const col = this.col;
    if (col === null) return;
    this.debounce.set(() => this.handlers.request(col, ++this.seq, this.search.value.trim()), COLUMN_DEBOUNCE_MS);
  }

  /** The kernel's answer: drawn when it is the newest asked for. */
  answer(message: ColumnAnswer): void {
    if (message.seq !== this.seq) return;
    this.show(message);
  }

  show(answer: ColumnAnswer | null): void {
    this.set(answer);
    this.redraw();
  }

  /** The next paint draws whatever it shows (its canvas may have lost its pixels). */
  forget(): void {
    this.painted = null;
  }

  /** Show `answer` at the next paint (a saved state's panel, made while drawing). */
  set(answer: ColumnAnswer | null): void {
    this.shown = answer;
    if (answer === null) this.wanted = "";
  }

  /** Draw the shown answer at `width` CSS pixels, the row `marked` (an index into its rows) marked;
   * `tokenAt` names the input token of the answer's column (which may not be the one followed now, until
   * the newer answer comes). */
  paint(width: number, tokenAt: (col: number) => string, marked: number | null, palette: Palette, dpr: number): void {
    const a = this.shown;
    assign(this.root, "hidden", a === null);
    if (!a) return;
    // The heatmap redraws on every kernel message; this panel's canvas and key are rebuilt only when
    // what they show changed.
    const inputs = [a, this.y, width, tokenAt(a.col), marked, palette, dpr, this.search.value];
    const last = this.painted;
    if (last && inputs.every((v, i) => Object.is(v, last[i]))) return;
    this.painted = inputs;
    const series = a.error ? [] : seriesOf(a, this.y);
    this.heading.textContent = a.error ? `position ${a.col}: ${a.error}` : `position ${a.col} (${visibleToken(tokenAt(a.col))}): ${a.lines.some((l) => l.pinned) ? "pinned items" : "tokens that are top-1 at some layer"} across the layers`;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${HEIGHT}px`;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(HEIGHT * dpr);
    const ctx = this.canvas.getContext("2d");
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      drawPanel(ctx, width, HEIGHT, a, series, this.y, marked, palette);
    }
    this.fillKey(a, series);
    this.fillFound(a);
    Object.assign(this.root.dataset, { col: String(a.col), lines: String(series.length) });
  }

  /** The search's tokens, with their best probability at any layer of the column. */
  private fillFound(a: ColumnAnswer): void {
    this.found.replaceChildren();
    if (!this.search.value.trim()) return;
    if (!a.found.length) this.found.textContent = "no token of the vocabulary begins with this";
    for (const f of a.found) {
      const button = element(this.doc, "button", "lw-panel-hit", this.found);
      button.type = "button";
      button.dataset.id = String(f.id);
      button.textContent = `${visibleToken(f.text)} ${(100 * f.probability).toFixed(1)}%`;
      button.title = `token ${f.id}: best at layer ${f.row}; click to pin`;
    }
  }

  private fillKey(a: ColumnAnswer, series: Series[]): void {
    this.key.replaceChildren();
    for (const s of series) {
      const item = element(this.doc, "span", "lw-panel-item", this.key);
      const swatch = element(this.doc, "span", "lw-panel-swatch", item);
      swatch.style.borderTop = `2px ${s.dash.length ? (s.dash[0] === 1 ? "dotted" : "dashed") : "solid"} ${s.color}`;
      item.append(s.name);
    }
    for (const line of a.lines.filter((l) => l.pinned)) {
      // A token set is shown with its tokens: which entries of the vocabulary the word gathered.
      if (line.tokens.length) {
        const more = line.tokens.length > 12 ? ` … (${line.tokens.length} tokens)` : "";
        const set = element(this.doc, "span", "lw-panel-set", this.key);
        set.textContent = `${line.label} = ${line.tokens.slice(0, 12).map(visibleToken).join(" ")}${more}`;
      }
      const button = element(this.doc, "button", "lw-panel-unpin", this.key);
      button.type = "button";
      button.dataset.unpin = line.label;
      button.textContent = `unpin ${line.label}`;
      button.title = line.tokens.length ? `tokens: ${line.tokens.map(visibleToken).join(" ")}` : "";
    }
  }

  dispose(): void {
    this.disposer.dispose();
    this.root.remove();
  }
}
