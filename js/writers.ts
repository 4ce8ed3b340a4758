// The "what wrote this" panel: for a clicked cell (or the selected one, key W), what each head, each
// MLP, the embedding and the biases wrote into its logit for its top-1 or a pinned token, one picture
// per model (A and B side by side). It asks the kernel, which recomputes the position from its cache;
// only the newest answer is drawn, and it asks again when the picture changes under it. Model strings
// go in as textContent or canvas text only.

import { type AttributionAnswer, attributionScale, componentAt, drawAttribution, gridLayout, type GridLayout, summaryOf } from "./attribution";
import { Disposer } from "./disposer";
import { element } from "./dom";
import type { Palette } from "./theme";
import { visibleToken } from "./tokens";

/** How long the panel waits for typing to settle before asking again for the cell it explains. */
export const ATTRIBUTION_DEBOUNCE_MS = 80;

const KEY = "Red wrote towards the token, blue against (one scale for every picture here); hover a square for its share of the logit.";

export interface Explained {
  /** The session row (a layer index, num_layers + ℓ for "ℓ.attn") and the token column. */
  row: number;
  col: number;
}

export interface WritersHandlers {
  request(row: number, col: number, token: number | null, seq: number): void;
}

export class Writers {
  readonly root: HTMLDivElement;
  private readonly title: HTMLSpanElement;
  private readonly token: HTMLSelectElement;
  private readonly body: HTMLDivElement;
  private readonly readout: HTMLDivElement;
  private readonly disposer = new Disposer();
  private readonly debounce: ReturnType<Disposer["timer"]>;
  private seq = 0;
  private asked: (Explained & { stateSeq: number }) | null = null;
  private shown: AttributionAnswer | null = null;
  private layouts: GridLayout[] = [];
  private painted = "";

  constructor(
    private readonly doc: Document,
    parent: HTMLElement,
    private readonly handlers: WritersHandlers,
    private readonly redraw: () => void,
  ) {
    this.root = element(doc, "div", "lw-writers", parent);
    this.root.hidden = true;
    const head = element(doc, "div", "lw-writers-head", this.root);
    this.title = element(doc, "span", "lw-writers-title", head);
    const label = element(doc, "label", "lw-writers-for", head);
    label.append("token");
    this.token = element(doc, "select", "lw-writers-token", label);
    const close = element(doc, "button", "lw-writers-close", head);
    Object.assign(close, { type: "button", textContent: "close", title: "Close this panel (click a cell, or press W on the selected one, to open it again)" });
    this.body = element(doc, "div", "lw-writers-body", this.root);
    this.readout = element(doc, "div", "lw-writers-readout", this.root);
    this.debounce = this.disposer.timer();
    this.disposer.listen(close, "click", () => this.close());
    this.disposer.listen(this.token, "change", () => this.ask(0));
    this.disposer.listen(this.body, "mousemove", (event) => this.hover(event));
  }

  get open(): Explained | null {
    return this.asked && { row: this.asked.row, col: this.asked.col };
  }

  /** Explain cell (row, col) of the state numbered `stateSeq`, now. */
  explain(cell: Explained, stateSeq: number): void {
    this.asked = { ...cell, stateSeq };
    this.ask(0);
  }

  /** The picture changed: ask again for the open cell (debounced), or close when it is gone. */
  follow(stateSeq: number, exists: (cell: Explained) => boolean): void {
    const a = this.asked;
    if (!a || a.stateSeq === stateSeq) return;
    if (!exists(a)) return this.close();
    a.stateSeq = stateSeq;
    this.ask(ATTRIBUTION_DEBOUNCE_MS);
  }

  /** The tokens offered besides the cell's top-1: the pinned items' tokens. */
  offer(tokens: { id: number; text: string }[]): void {
    const want = ["top-1", ...tokens.map((t) => `${t.id}`)].join("|");
    if (this.token.dataset.offered === want) return;
    const chosen = this.token.value;
    this.token.replaceChildren();
    const top = element(this.doc, "option", "", this.token);
    Object.assign(top, { value: "", textContent: "the cell's top-1" });
    for (const t of tokens) {
      const option = element(this.doc, "option", "", this.token);
      Object.assign(option, { value: String(t.id), textContent: visibleToken(t.text) });
    }
    this.token.value = tokens.some((t) => String(t.id) === chosen) ? chosen : "";
    this.token.dataset.offered = want;
  }

  answer(message: AttributionAnswer): void {
    if (message.seq !== this.seq || !this.asked) return;
    this.shown = message;
    this.redraw();
  }

  close(): void {
    this.debounce.clear();
    this.asked = null;
    this.shown = null;
    this.painted = "";
    this.root.hidden = true;
    this.redraw();
  }

  private ask(delay: number): void {
    this.debounce.clear();
    const a = this.asked;
    if (!a) return;
    const token = this.token.value === "" ? null : Number(this.token.value);
    const send = (): void => this.handlers.request(a.row, a.col, token, ++this.seq);
    if (delay) this.debounce.set(send, delay);
    else send();
    this.root.hidden = false;
    this.root.dataset.state = "asking";
  }

  private hover(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const index = Number((target as HTMLCanvasElement).dataset.model ?? NaN);
    const m = this.shown?.models[index];
    const l = this.layouts[index];
    if (!(target instanceof HTMLCanvasElement) || !m || !l) return;
    const box = target.getBoundingClientRect();
    const hit = componentAt(l, m, event.clientX - box.left, event.clientY - box.top);
    this.readout.textContent = hit ? `${m.name}, ${hit.label}: ${hit.value === null ? "after this row" : hit.value.toFixed(4)}` : KEY;
  }

  /** Draw the shown answer at `width` CSS pixels (the models side by side). */
  paint(width: number, colors: Palette, dpr: number): void {
    const a = this.shown;
    if (!this.asked) return;
    this.root.hidden = false;
    const key = `${this.seq}|${a?.seq}|${width}|${colors.background}|${dpr}`;
    if (!a || key === this.painted) return; // a redraw of the heatmap need not rebuild this
    this.painted = key;
    this.body.replaceChildren();
    this.layouts = [];
    this.readout.textContent = KEY;
    if (a.error) {
      this.title.textContent = a.error;
      this.root.dataset.state = "error";
      return;
    }
    const first = a.models[0];
    this.title.textContent = first ? `What wrote “${visibleToken(first.token)}” at ${first.label}, position ${a.col} (${first.lens} lens):` : "";
    const scale = attributionScale(a.models);
    const each = Math.max(160, Math.floor(width / Math.max(1, a.models.length)) - 12);
    a.models.forEach((m, index) => {
      const box = element(this.doc, "div", "lw-writers-model", this.body);
      box.style.width = `${each}px`; // the summary wraps under its own picture, so A and B stay side by side
      const name = element(this.doc, "div", "lw-writers-name", box);
      name.textContent = a.models.length > 1 ? `${m.model.toUpperCase()}: ${m.name}` : m.name;
      const l = gridLayout(m.heads.length, m.heads[0]?.length ?? 0, each);
      const canvas = element(this.doc, "canvas", "lw-writers-canvas", box);
      canvas.dataset.model = String(index);
      canvas.style.width = `${l.width}px`;
      canvas.style.height = `${l.height}px`;
      canvas.width = Math.round(l.width * dpr);
      canvas.height = Math.round(l.height * dpr);
      const ctx = canvas.getContext("2d");
      if (ctx) {
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        drawAttribution(ctx, l, m, scale, colors);
      }
      const summary = element(this.doc, "div", "lw-writers-summary", box);
      summary.textContent = summaryOf(m);
      this.layouts.push(l);
    });
    Object.assign(this.root.dataset, { state: "shown", row: String(a.row), col: String(a.col), models: String(a.models.length), token: first ? String(first.token_id) : "" });
  }

  dispose(): void {
    this.disposer.dispose();
    this.root.remove();
  }
}
