// The generation bar under the text box: let the model continue the text (greedy, a token at a time,
// each a new column), from its own output or from a chosen row's lens prediction, and stop it. The
// kernel does the writing (controller.py); this only asks, and shows whether it is writing.

import { GENERATION } from "./constants";
import { Disposer } from "./disposer";
import { assign, data, element } from "./dom";

export const DEFAULT_NEW_TOKENS = GENERATION.default_new_tokens;
export const MAX_NEW_TOKENS = GENERATION.max_new_tokens;

export interface GenerationHandlers {
  /** Write up to `count` tokens, following row `row`'s prediction (null: the model's own output). */
  generate(count: number, row: number | null, model: "a" | "b"): void;
  stop(): void;
}

export interface GenerationInput {
  generating: boolean;
  /** The rows one can write from, below the output (session row ids and their labels). */
  rows: { row: number; label: string }[];
  /** Model names in A/B (empty with one model). */
  names: string[];
  /** No kernel (a saved page), or no text to continue. */
  disabled: boolean;
}

/** The count typed, within 1 … MAX_NEW_TOKENS (the default when it is not a number). */
export function tokenCount(value: string): number {
  const n = Math.floor(Number(value));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, MAX_NEW_TOKENS) : DEFAULT_NEW_TOKENS;
}

export class GenerationBar {
  readonly root: HTMLDivElement;
  private readonly go: HTMLButtonElement;
  private readonly count: HTMLInputElement;
  private readonly from: HTMLSelectElement;
  private readonly model: HTMLSelectElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly disposer = new Disposer();
  private offered = "";

  constructor(
    private readonly doc: Document,
    parent: HTMLElement,
    handlers: GenerationHandlers,
  ) {
    this.root = element(doc, "div", "lw-generate", parent);
    this.go = element(doc, "button", "lw-generate-go", this.root);
    Object.assign(this.go, { type: "button", textContent: "generate", title: "Let the model continue the text, greedily, a token at a time: each is a new column. Typing stops it." });
    this.count = element(doc, "input", "lw-generate-count", this.root);
    Object.assign(this.count, { type: "number", min: "1", max: String(MAX_NEW_TOKENS), value: String(DEFAULT_NEW_TOKENS), title: "How many tokens at most" });
    this.root.append("tokens from");
    this.from = element(doc, "select", "lw-generate-from", this.root);
    this.from.title = "Follow the model's own prediction, or a layer's lens prediction: what the model would have said had it stopped there";
    this.model = element(doc, "select", "lw-generate-model", this.root);
    this.model.title = "Which model writes (the other is read on its tokens)";
    this.stopButton = element(doc, "button", "lw-generate-stop", this.root);
    Object.assign(this.stopButton, { type: "button", textContent: "stop", hidden: true });
    this.disposer.listen(this.go, "click", () => {
      const row = this.from.value === "" ? null : Number(this.from.value);
      handlers.generate(tokenCount(this.count.value), row, this.model.value === "b" ? "b" : "a");
    });
    this.disposer.listen(this.stopButton, "click", () => handlers.stop());
  }

  update(input: GenerationInput): void {
    const want = JSON.stringify([input.rows, input.names]);
    if (want !== this.offered) {
      this.offered = want;
      const chosen = this.from.value;
      this.from.replaceChildren();
      const own = element(this.doc, "option", "", this.from);
      Object.assign(own, { value: "", textContent: "the output" });
      for (const { row, label } of input.rows) {
        const option = element(this.doc, "option", "", this.from);
        Object.assign(option, { value: String(row), textContent: `layer ${label} (its lens)` });
      }
      this.from.value = input.rows.some((r) => String(r.row) === chosen) ? chosen : "";
      this.model.replaceChildren();
      input.names.forEach((name, i) => {
        const option = element(this.doc, "option", "", this.model);
        Object.assign(option, { value: i === 0 ? "a" : "b", textContent: `${i === 0 ? "A" : "B"} writes: ${name}` });
      });
    }
    assign(this.model, "hidden", input.names.length < 2);
    assign(this.go, "disabled", input.disabled || input.generating);
    assign(this.stopButton, "hidden", !input.generating);
    data(this.root, { generating: String(input.generating) });
    assign(this.root, "hidden", false);
  }

  dispose(): void {
    this.disposer.dispose();
    this.root.remove();
  }
}
