import { afterEach, describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/payload_stream.json";
import type { Payload } from "./payload";
import { DEBOUNCE_MS } from "./sync";
import { revive } from "./testing";
import widget, { type Model, shownRows } from "./widget";

const updates = revive(fixture.updates) as Payload[];

/** The anywidget model contract, as VS Code, Colab and JupyterLab implement it. */
class FakeModel {
  state: Model;
  listeners = new Map<string, Set<() => void>>();
  saved: Partial<Model>[] = [];
  sentMessages: unknown[] = [];
  private pending: Partial<Model> = {};
  constructor(initial: Partial<Model>) {
    this.state = {
      text: "Paris is the",
      text_revision: 1,
      done_revision: 1,
      statistic: "entropy",
      layer_stride: 2,
      lens: "logit",
      lens_options: ["logit"],
      update: {},
      vocabulary: revive(fixture.vocabulary) as Model["vocabulary"],
      error: "",
      ...initial,
    };
  }
  get<K extends keyof Model>(key: K): Model[K] {
    return this.state[key];
  }
  set<K extends keyof Model>(key: K, value: Model[K]): void {
    this.state[key] = value;
    this.pending[key] = value;
  }
  save_changes(): void {
    this.saved.push(this.pending);
    this.pending = {};
  }
  send(message: unknown): void {
    this.sentMessages.push(message);
  }
  on(name: string, fn: () => void): void {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name)!.add(fn);
  }
  off(name: string, fn: () => void): void {
    this.listeners.get(name)?.delete(fn);
  }
  /** A change from the kernel. */
  kernel<K extends keyof Model>(key: K, value: Model[K]): void {
    this.state[key] = value;
    for (const fn of this.listeners.get(`change:${key}`) ?? []) fn();
  }
  listenerCount(): number {
    return [...this.listeners.values()].reduce((n, s) => n + s.size, 0);
  }
}

const frame = () => new Promise((resolve) => setTimeout(resolve, 30));

function mount(initial: Partial<Model> = {}) {
  const model = new FakeModel({ update: updates[0], ...initial });
  const host = document.createElement("div");
  document.body.appendChild(host);
  const cleanup = widget.render({ model: model as never, el: host, experimental: {} as never, signal: new AbortController().signal, host: {} as never });
  const root = host.querySelector(".lens-widget") as HTMLElement;
  return { model, host, root, cleanup: cleanup as () => void };
}

afterEach(() => {
  document.body.replaceChildren();
  vi.useRealTimers();
});

describe("shownRows", () => {
  it("keeps every stride-th layer and always the output row, output on top", () => {
    expect(shownRows([0, 1, 2, 3, 4, 5], 5, 2)).toEqual([5, 4, 2, 0]);
    expect(shownRows([0, 2, 4], 4, 3)).toEqual([4, 0]);
  });
});

describe("render", () => {
  it("draws the state it is given and names every control", async () => {
    const { root } = mount();
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[0]!.header.n_tokens));
    expect(root.dataset.rows).toBe("3");
    expect((root.querySelector("textarea") as HTMLTextAreaElement).value).toBe("Paris is the");
    expect(root.querySelectorAll(".lw-stat").length).toBe(5);
    expect(root.querySelector('[aria-pressed="true"]')!.textContent).toBe("Entropy");
    expect((root.querySelector(".lw-lens") as HTMLElement).hidden).toBe(true);
  });

  it("applies deltas in order, ignores old ones and asks for the whole state after a gap", async () => {
    const { model, root } = mount();
    model.kernel("update", updates[1]!);
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    model.kernel("update", updates[0]!); // an older full state: ignored
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    model.kernel("update", updates[3]!); // skips seq 3: cannot be applied
    expect(model.sentMessages).toContainEqual({ type: "request_full" });
  });

  it("sends the first keystroke at once and a burst's newest text once, with new revisions", async () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    for (const text of ["Paris is the c", "Paris is the ca", "Paris is the cap"]) {
      box.value = text;
      box.dispatchEvent(new Event("input"));
      vi.advanceTimersByTime(10);
    }
    expect(model.saved).toEqual([{ text: "Paris is the c", text_revision: 2 }]);
    expect(root.querySelector(".lw-status")!.textContent).toBe("computing…");
    model.kernel("done_revision", 2);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.saved).toEqual([
      { text: "Paris is the c", text_revision: 2 },
      { text: "Paris is the cap", text_revision: 4 },
    ]);
  });

  it("keeps the user's text when the kernel echoes an older revision", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    box.value = "typed by the user";
    box.dispatchEvent(new Event("input"));
    model.state.text_revision = 1;
    model.kernel("text", "Paris is the");
    expect(box.value).toBe("typed by the user");
    model.state.text_revision = 9;
    model.kernel("text", "set from Python");
    expect(box.value).toBe("set from Python");
  });

  it("shows kernel errors and unreadable payloads as messages, without throwing", async () => {
    const { model, root } = mount();
    model.kernel("error", "Could not analyse the text: RuntimeError: boom");
    expect(root.querySelector(".lw-error")!.textContent).toContain("boom");
    const broken = { ...updates[0]!, header: { ...updates[0]!.header, seq: 50 }, token_ids: new DataView(new ArrayBuffer(1)) };
    expect(() => model.kernel("update", broken)).not.toThrow();
    expect(root.querySelector(".lw-error")!.textContent).toContain("Could not read the kernel's update");
    expect(model.sentMessages).toContainEqual({ type: "request_full" });
  });

  it("switches statistic and stride on the client and tells the kernel", async () => {
    const { model, root } = mount();
    await frame();
    (root.querySelector('[data-statistic="rank"]') as HTMLButtonElement).click();
    expect(model.state.statistic).toBe("rank");
    expect(root.querySelector('[aria-pressed="true"]')!.textContent).toBe("Rank");
    const slider = root.querySelector(".lw-stride-input") as HTMLInputElement;
    slider.value = "4";
    slider.dispatchEvent(new Event("input"));
    await frame();
    expect(model.saved.at(-1)).toEqual({ layer_stride: 4 });
    expect(root.dataset.rows).toBe("2");
  });

  it("moves the selected cell with arrow keys, pins with Enter and unpins with Escape", async () => {
    const { root } = mount();
    await frame();
    const grid = root.querySelector(".lw-scroll") as HTMLElement;
    const tooltip = root.querySelector(".lw-tooltip") as HTMLElement;
    const key = (k: string) => grid.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
    key("ArrowRight"); // selects the first cell
    key("ArrowRight");
    key("ArrowDown");
    expect(tooltip.hidden).toBe(false);
    expect(tooltip.textContent).toContain("layer 2 · position 1");
    key("Enter");
    expect(tooltip.textContent).toContain("pinned");
    key("Escape");
    expect(tooltip.hidden).toBe(true);
  });

  it("cleans up every listener and its DOM", () => {
    const { model, host, cleanup } = mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(host.childElementCount).toBe(0);
  });
});
