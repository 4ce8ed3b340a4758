import { afterEach, describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/payload_stream.json";
import type { Payload } from "./payload";
import { DEBOUNCE_MS } from "./sync";
import { BAND_HEIGHT } from "./heatmap";
import { revive, toMessage } from "./testing";
import widget, { type Model, PING_TIMEOUT_MS, shownRows, statisticTitle, VISIBLE_DEBOUNCE_MS } from "./widget";

const updates = revive(fixture.updates) as Payload[];

/** The anywidget model contract, as VS Code, Colab and JupyterLab implement it. */
class FakeModel {
  state: Model;
  listeners = new Map<string, Set<(...args: unknown[]) => void>>();
  saved: Partial<Model>[] = [];
  sentMessages: unknown[] = [];
  private pending: Partial<Model> = {};
  constructor(initial: Partial<Model>) {
    this.state = {
      text: "Paris is the",
      statistic: "entropy",
      diff_statistic: "js",
      mode: "a",
      token_range: [],
      layer_stride: 2,
      lens: "logit",
      lens_options: ["logit"],
      snapshot: {},
      vocabulary: revive(fixture.vocabulary) as Model["vocabulary"],
      error: "",
      remote_status: "",
      pins: [],
      instance: `fake-${Math.random()}`,
      color_scale: "fixed",
      sublayers: false,
      generated: [],
      generating: false,
      messages: [],
      roles: [],
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
  on(name: string, fn: (...args: unknown[]) => void): void {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name)!.add(fn);
  }
  off(name: string, fn: (...args: unknown[]) => void): void {
    this.listeners.get(name)?.delete(fn);
  }
  /** A change from the kernel. */
  kernel<K extends keyof Model>(key: K, value: Model[K]): void {
    this.state[key] = value;
    for (const fn of this.listeners.get(`change:${key}`) ?? []) fn();
  }
  /** A custom message from the kernel. */
  message(content: unknown, buffers: unknown[] = []): void {
    for (const fn of this.listeners.get("msg:custom") ?? []) fn(content, buffers);
  }
  /** A delta, sent as the kernel sends it: a message with the payload's buffers beside it. */
  delta(payload: Payload): void {
    const { content, buffers } = toMessage(payload);
    this.message({ type: "update", payload: content }, buffers);
  }
  /** The edit messages this view sent. */
  edits(): { view: string; edit: number; text: string }[] {
    return this.sentMessages.filter((m) => (m as { type?: string }).type === "edit") as { view: string; edit: number; text: string }[];
  }
  listenerCount(): number {
    return [...this.listeners.values()].reduce((n, s) => n + s.size, 0);
  }
}

const frame = () => new Promise((resolve) => setTimeout(resolve, 30));

function type(box: HTMLTextAreaElement, text: string): void {
  box.value = text;
  box.dispatchEvent(new Event("input"));
  vi.advanceTimersByTime(10);
}

function mount(initial: Partial<Model> = {}) {
  const model = new FakeModel({ snapshot: updates[0], ...initial });
  const host = document.createElement("div");
  document.body.appendChild(host);
  const stop = widget.initialize({ model: model as never }); // what anywidget does once per model
  const { root, cleanup: close } = view(model, host);
  return { model, host, root, cleanup: () => (close(), stop()) };
}

/** One more view of `model` (anywidget's render), in `host`. */
function view(model: FakeModel, host: HTMLElement = document.body.appendChild(document.createElement("div"))) {
  const cleanup = widget.render({ model: model as never, el: host, experimental: {} as never, signal: new AbortController().signal, host: {} as never });
  return { root: host.lastElementChild as HTMLElement, cleanup: cleanup as () => void };
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

describe("statisticTitle", () => {
  it("names a statistic with its units once, and plain numbers bare", () => {
    expect(statisticTitle("Entropy", "nats")).toBe("Entropy (nats)");
    expect(statisticTitle("Rank", "")).toBe("Rank");
  });
});

describe("render", () => {
  it("draws the state it is given and names every control", async () => {
    const { root } = mount();
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[0]!.header.n_tokens));
    expect(root.dataset.rows).toBe("3");
    expect((root.querySelector("textarea") as HTMLTextAreaElement).value).toBe("Paris is the");
    // Every statistic, then each pinned item's probability.
    const pins = updates[0]!.header.pins;
    expect(pins.length).toBeGreaterThan(0);
    expect(Array.from(root.querySelectorAll(".lw-stat"), (b) => b.textContent)).toEqual([
      ...["Entropy", "Cross-entropy", "KL(model‖lens)", "Max probability", "Rank"],
      ...pins.map((label) => `p(${label})`),
    ]);
    expect(root.querySelector('[aria-pressed="true"]')!.textContent).toBe("Entropy");
    expect((root.querySelector(".lw-lens") as HTMLElement).hidden).toBe(true);
  });

  it("applies deltas in order, ignores old ones and asks for the whole state after a gap", async () => {
    const { model, root } = mount();
    model.delta(updates[1]!);
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    model.kernel("snapshot", updates[0]!); // an older full state: ignored
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    model.delta(updates[3]!); // skips seq 3: cannot be applied
    expect(model.sentMessages).toContainEqual({ type: "request_full" });
  });

  it("takes a full update sent as a message (typing that replaced the whole text, columns pending)", async () => {
    const { model, root } = mount();
    model.delta(updates[1]!);
    await frame();
    model.delta({ ...updates[0]!, header: { ...updates[0]!.header, seq: 3, base: -1 } });
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[0]!.header.n_tokens));
    expect(root.dataset.seq).toBe("3");
  });

  it("skips a snapshot with the seq it already has and takes a newer one", async () => {
    const { model, root } = mount();
    model.delta(updates[1]!);
    await frame();
    const seq = updates[1]!.header.seq;
    const sameSeq = { ...updates[0]!, header: { ...updates[0]!.header, seq } };
    model.kernel("snapshot", sameSeq); // the kernel catching its snapshot up after typing: same picture
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    model.kernel("snapshot", { ...updates[0]!, header: { ...updates[0]!.header, seq: seq + 1 } });
    await frame();
    expect(root.dataset.nTokens).toBe(String(updates[0]!.header.n_tokens));
  });

  it("keeps its picture when a delta's buffers are lost, says so and asks for the whole state", async () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const { content } = toMessage(updates[1]!);
    model.message({ type: "update", payload: content }, []); // a host that dropped the buffers
    expect(root.querySelector(".lw-error")!.textContent).toContain("Could not read the kernel's update");
    vi.advanceTimersByTime(300);
    expect(root.dataset.nTokens).toBe(String(updates[0]!.header.n_tokens)); // the older picture stays
    expect(model.sentMessages).toContainEqual({ type: "request_full" });
  });

  it("draws the roles band from the saved traits, as a page or a reopened notebook does, and drops it with them", async () => {
    const roles = [{ role: "user", start: 0, end: 12, special: false, message: 0 }];
    const { model, root } = mount({ roles, messages: [{ role: "user", content: "Paris is the" }] });
    await frame();
    const canvas = root.querySelector(".lw-canvas") as HTMLCanvasElement;
    const banded = parseFloat(canvas.style.height);
    model.kernel("roles", []);
    await frame();
    expect(banded - parseFloat(canvas.style.height)).toBe(BAND_HEIGHT);
  });

  it("pings the kernel; without an answer it says it shows a snapshot, with no spinner and a read-only box", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const ping = model.sentMessages.find((m) => (m as { type: string }).type === "ping") as { view: string };
    expect(ping.view).toBeTruthy();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    model.set("layer_stride", 1); // rows the snapshot does not have
    vi.advanceTimersByTime(PING_TIMEOUT_MS + 10);
    model.kernel("layer_stride", 1);
    expect(root.dataset.snapshot).toBe("true");
    expect((root.querySelector(".lw-snapshot") as HTMLElement).hidden).toBe(false);
    expect(root.querySelector(".lw-snapshot")!.textContent).toContain("no kernel is connected");
    expect(box.readOnly).toBe(true);
    expect(root.dataset.busy).toBe("false");
    expect(root.querySelector(".lw-status")!.textContent).toContain("only the saved rows");
    model.message({ type: "pong", view: ping.view }); // a kernel that was busy answers late
    expect(root.dataset.snapshot).toBe("false");
    expect(box.readOnly).toBe(false);
  });

  it("goes to snapshot mode at once when its host says there is no kernel", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const ping = model.sentMessages.find((m) => (m as { type: string }).type === "ping") as { view: string };
    model.message({ type: "no_kernel", view: ping.view });
    expect(root.dataset.snapshot).toBe("true");
    expect((root.querySelector("textarea") as HTMLTextAreaElement).readOnly).toBe(true);
  });

  it("stays live when the kernel answers its ping", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const ping = model.sentMessages.find((m) => (m as { type: string }).type === "ping") as { view: string };
    model.message({ type: "pong", view: "another view" });
    model.message({ type: "pong", view: ping.view });
    vi.advanceTimersByTime(PING_TIMEOUT_MS * 2);
    expect(root.dataset.snapshot).toBe("false");
    expect((root.querySelector(".lw-snapshot") as HTMLElement).hidden).toBe(true);
  });

  it("works on a host whose send and save_changes throw (a static page with no kernel)", async () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    model.send = () => {
      throw new Error("no comm channel");
    };
    model.save_changes = () => {
      throw new Error("no comm channel");
    };
    expect(() => (root.querySelector('[data-statistic="rank"]') as HTMLButtonElement).click()).not.toThrow();
    expect(model.state.statistic).toBe("rank");
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    expect(() => type(box, "Paris is the capital")).not.toThrow();
  });

  it("sends the first keystroke at once and a burst's newest text once, as numbered edit messages", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    for (const text of ["Paris is the c", "Paris is the ca", "Paris is the cap"]) type(box, text);
    expect(model.edits().map((e) => [e.text, e.edit])).toEqual([["Paris is the c", 1]]);
    expect(model.saved).toEqual([]); // the text trait is the kernel's: the view never sets it
    expect(root.querySelector(".lw-status")!.textContent).toBe("computing…");
    const view = model.edits()[0]!.view;
    model.message({ type: "edit_done", view: "another view", edit: 1 }); // not ours: still waiting
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.edits()).toHaveLength(1);
    model.message({ type: "edit_done", view, edit: 1 });
    expect(model.edits().map((e) => [e.text, e.edit, e.view])).toEqual([
      ["Paris is the c", 1, view],
      ["Paris is the cap", 3, view],
    ]);
  });

  it("shows text set from Python once its own edits are done: type, set from Python, type again", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    type(box, "Paris is the capital");
    const view = model.edits()[0]!.view;
    model.kernel("text", "Paris is the capital"); // the kernel made the edit its text…
    model.message({ type: "edit_done", view, edit: 1 }); // …then said it is done
    model.kernel("text", "Two plus two is four"); // a later cell: widget.text = …
    expect(box.value).toBe("Two plus two is four");
    vi.advanceTimersByTime(DEBOUNCE_MS);
    type(box, "Two plus two is four.");
    expect(model.edits().at(-1)!.text).toBe("Two plus two is four.");
  });

  it("adopts the kernel's text when the done message comes after a text that arrived mid-edit", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    type(box, "typed");
    const view = model.edits()[0]!.view;
    model.kernel("text", "set from Python"); // arrives while the view's edit is in flight: not yet
    expect(box.value).toBe("typed");
    vi.advanceTimersByTime(DEBOUNCE_MS);
    model.message({ type: "edit_done", view, edit: 1 });
    expect(box.value).toBe("set from Python"); // nothing typed since: the kernel's text is shown
  });

  it("keeps typing the kernel has not finished with, and sends it", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    type(box, "typed");
    type(box, "typed more"); // merged, waiting for its pause
    model.kernel("text", "set from Python");
    expect(box.value).toBe("typed more");
    const view = model.edits()[0]!.view;
    model.message({ type: "edit_done", view, edit: 1 });
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(box.value).toBe("typed more");
    expect(model.edits().at(-1)!.text).toBe("typed more");
  });

  it("says a remote trace is queued, then running, over the picture it keeps", async () => {
    const { model, root } = mount();
    await frame();
    const status = root.querySelector(".lw-status")!;
    const cells = root.querySelector("canvas")!;
    model.kernel("remote_status", "queued");
    expect(status.textContent).toBe("queued…");
    expect(status.classList.contains("lw-busy")).toBe(true);
    model.kernel("remote_status", "running");
    expect(status.textContent).toBe("running…");
    expect(root.querySelector("canvas")).toBe(cells);
    model.kernel("remote_status", "");
    expect(status.textContent).toMatch(/tokens/);
    expect(status.classList.contains("lw-busy")).toBe(false);
  });

  it("shows kernel errors and unreadable payloads as messages, without throwing", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    model.kernel("error", "Could not analyse the text: RuntimeError: boom");
    expect(root.querySelector(".lw-error")!.textContent).toContain("boom");
    const broken = { ...updates[0]!, header: { ...updates[0]!.header, seq: 50 }, token_ids: new DataView(new ArrayBuffer(1)) };
    expect(() => model.kernel("snapshot", broken)).not.toThrow();
    expect(root.querySelector(".lw-error")!.textContent).toContain("Could not read the kernel's update");
    vi.advanceTimersByTime(300);
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

  it("survives a vocabulary that did not arrive (Colab drops initial buffers) and asks again", () => {
    vi.useFakeTimers();
    const lost = { size: 400, offsets: null, utf8: null } as unknown as Model["vocabulary"];
    const { model, root } = mount({ vocabulary: lost });
    expect(root.querySelector(".lw-error")!.textContent).toContain("token strings did not arrive");
    expect(root.querySelector("textarea")).not.toBeNull(); // rendered, not thrown
    vi.advanceTimersByTime(300);
    expect(model.sentMessages.filter((m) => (m as { type: string }).type === "request_vocabulary")).toHaveLength(1);
    model.kernel("vocabulary", revive(fixture.vocabulary) as Model["vocabulary"]);
    expect(root.querySelector(".lw-error")!.textContent).toBe("");
  });

  it("an update whose buffers never arrive readable gives a message and a few requests, not a loop", () => {
    vi.useFakeTimers();
    const lostBuffers = (seq: number) => ({
      ...updates[0]!,
      header: { ...updates[0]!.header, seq },
      grids: [{ stats: null, top_ids: null, top_probs: null, id_table: null, patch: null }],
    });
    const { model, root } = mount({ snapshot: lostBuffers(1) as never });
    const fulls = () => model.sentMessages.filter((m) => (m as { type: string }).type === "request_full").length;
    // A kernel that answers every request at once with another unreadable update.
    let seq = 1;
    let answered = 0;
    const answerFor = (ms: number, step: number): void => {
      for (let t = 0; t < ms; t += step) {
        while (answered < fulls()) {
          answered += 1;
          model.kernel("snapshot", lostBuffers(++seq) as never);
        }
        vi.advanceTimersByTime(step);
      }
    };
    answerFor(2000, 5);
    expect(fulls()).toBeGreaterThanOrEqual(2);
    expect(fulls()).toBeLessThanOrEqual(5);
    expect(root.querySelector(".lw-error")!.textContent).toContain("Could not read the kernel's update");
    // A host that never delivers: after a few more answers the view stops asking, and says so.
    answerFor(120_000, 50);
    expect(fulls()).toBeLessThanOrEqual(8);
    expect(root.querySelector(".lw-error")!.textContent).toContain("gave up");
  });

  it("keeps the heatmap's keys from the host and marks it for Lumino", async () => {
    const { host, root } = mount();
    await frame();
    const grid = root.querySelector(".lw-scroll") as HTMLElement;
    expect(grid.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    const seen: string[] = [];
    host.addEventListener("keydown", (e) => seen.push(e.key));
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
    expect(seen).toEqual([]);
    await frame();
    expect(root.dataset.selected).toBe("0,0");
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Delete", bubbles: true }));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
    expect(seen).toEqual(["Enter"]); // only Shift+Enter (run the cell) reaches the host
  });

  it("keeps the keys VS Code's notebook bindings would act on from the document, not a cell's run", async () => {
    // VS Code hands every keydown that reaches the webview's window to its keybindings: a listener on
    // the document stands for them here.
    const { root } = mount();
    await frame();
    const seen: string[] = [];
    const notebook = (e: KeyboardEvent): void => void seen.push(`${e.shiftKey ? "Shift+" : ""}${e.ctrlKey ? "Ctrl+" : ""}${e.metaKey ? "Cmd+" : ""}${e.key}`);
    document.addEventListener("keydown", notebook);
    try {
      const grid = root.querySelector(".lw-scroll") as HTMLElement;
      grid.focus();
      const press = (target: HTMLElement, key: string, mods: KeyboardEventInit = {}): boolean =>
        target.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true, ...mods }));
      // Delete deletes the cell; with the Jupyter keymap j, k move and d d deletes; a, b add cells.
      for (const key of ["Delete", "Backspace", "j", "k", "d", "d", "a", "b", "J", "1", " ", "Enter", "Escape", "w", "ArrowDown"]) press(grid, key);
      await frame();
      expect(root.dataset.selected).toBe("0,0"); // the heatmap still answered its own keys
      const tooltip = root.querySelector(".lw-tooltip") as HTMLElement;
      for (const key of ["d", "Delete"]) press(tooltip, key); // any part of the widget, not only the heatmap
      expect(seen).toEqual([]);
      press(grid, "Enter", { shiftKey: true });
      press(grid, "Enter", { ctrlKey: true });
      press(grid, "Enter", { metaKey: true });
      press(grid, "s", { ctrlKey: true }); // the host's own shortcuts (save) still work
      press(root.querySelector("textarea") as HTMLElement, "Enter", { shiftKey: true });
      expect(seen).toEqual(["Shift+Enter", "Ctrl+Enter", "Cmd+Enter", "Ctrl+s", "Shift+Enter"]);
    } finally {
      document.removeEventListener("keydown", notebook);
    }
  });

  it("keeps its width when the host briefly reports none (a theme switch)", async () => {
    const { model, root } = mount();
    const scroller = root.querySelector(".lw-scroll") as HTMLElement;
    let width = 900;
    Object.defineProperty(scroller, "clientWidth", { get: () => width });
    model.kernel("statistic", "rank");
    await frame();
    const canvas = root.querySelector(".lw-canvas") as HTMLCanvasElement;
    expect(canvas.style.width).toBe("900px");
    width = 0;
    model.kernel("statistic", "entropy");
    await frame();
    expect(canvas.style.width).toBe("900px");
  });

  it("tells the kernel which columns are on screen, debounced, again after a scroll and before an edit", async () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const scroller = root.querySelector(".lw-scroll") as HTMLElement;
    Object.defineProperty(scroller, "clientWidth", { get: () => 180 });
    let left = 0;
    Object.defineProperty(scroller, "scrollLeft", { get: () => left, set: (v: number) => (left = v) });
    model.kernel("statistic", "rank");
    vi.advanceTimersByTime(VISIBLE_DEBOUNCE_MS + 50);
    const visible = () => model.sentMessages.filter((m) => (m as { type?: string }).type === "visible") as { start: number; stop: number }[];
    expect(visible()).toHaveLength(1);
    const first = visible()[0]!;
    expect(first.start).toBe(0);
    expect(first.stop).toBeGreaterThan(0);
    expect(first.stop).toBeLessThan(4);
    left = 60;
    scroller.dispatchEvent(new Event("scroll"));
    vi.advanceTimersByTime(VISIBLE_DEBOUNCE_MS / 2);
    expect(visible()).toHaveLength(1); // debounced
    vi.advanceTimersByTime(VISIBLE_DEBOUNCE_MS + 50);
    expect(visible()).toHaveLength(2);
    expect(visible()[1]!.start).toBe(1);
    left = 0;
    scroller.dispatchEvent(new Event("scroll"));
    type(root.querySelector("textarea") as HTMLTextAreaElement, "Paris is the capital");
    const kinds = model.sentMessages.map((m) => (m as { type?: string }).type);
    expect(kinds.lastIndexOf("visible")).toBe(kinds.lastIndexOf("edit") - 1); // the range first, at once
  });

  it("draws pending columns, counts them, and their tooltip says they are being computed", async () => {
    const { model, root } = mount();
    for (const update of updates.slice(1, 5)) model.delta(update);
    await frame();
    const pending = updates[4]!.header;
    expect(root.dataset.nTokens).toBe(String(pending.n_tokens));
    const expected = pending.n_tokens - pending.col_start - (pending.cell_end - pending.cell_start);
    expect(root.dataset.pending).toBe(String(expected));
    expect(root.querySelector(".lw-status")!.textContent).toContain(`${expected} columns to come`);
    model.delta(updates[5]!); // cells: two of them filled
    await frame();
    expect(root.dataset.pending).toBe(String(expected - (updates[5]!.header.cell_end - updates[5]!.header.cell_start)));
  });

  it("scrolls to the column under the text cursor as the user types, unless they scrolled elsewhere", async () => {
    const { model, root } = mount();
    const scroller = root.querySelector(".lw-scroll") as HTMLElement;
    Object.defineProperty(scroller, "clientWidth", { get: () => 180 });
    let left = 0;
    const setBy: string[] = [];
    Object.defineProperty(scroller, "scrollLeft", {
      get: () => left,
      set: (v: number) => {
        left = v;
        setBy.push("widget");
        setTimeout(() => scroller.dispatchEvent(new Event("scroll")), 0);
      },
    });
    const box = root.querySelector("textarea") as HTMLTextAreaElement;
    vi.useFakeTimers();
    type(box, "Paris is the capital 🙂"); // caret at the end: a column off screen to the right
    vi.useRealTimers();
    model.delta(updates[1]!);
    await frame();
    expect(left).toBeGreaterThan(0);
    const followed = left;
    // The user scrolls back to the start: the view stops following...
    left = 0;
    scroller.dispatchEvent(new Event("scroll"));
    vi.useFakeTimers();
    type(box, "Paris is the capital 🙂!");
    vi.useRealTimers();
    model.delta(updates[2]!);
    await frame();
    expect(left).toBe(0);
    // ...until they move the cursor again.
    box.dispatchEvent(new Event("click"));
    await frame();
    expect(left).toBe(followed);
    expect(setBy.length).toBe(2);
  });

  it("keeps the cell the arrow keys selected when they scroll to it", async () => {
    const { root } = mount();
    const scroller = root.querySelector(".lw-scroll") as HTMLElement;
    Object.defineProperty(scroller, "clientWidth", { get: () => 180 });
    let left = 0;
    Object.defineProperty(scroller, "scrollLeft", {
      get: () => left,
      set: (v: number) => {
        left = v;
        setTimeout(() => scroller.dispatchEvent(new Event("scroll")), 0); // as browsers do: after the change
      },
    });
    await frame();
    left = 150; // the user scrolled right
    scroller.dispatchEvent(new Event("scroll"));
    scroller.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" })); // selects column 0: scrolls back
    await frame();
    expect(left).toBe(0);
    expect(root.dataset.selected).toBe("0,0");
  });

  it("shares one decoded state between the views of one widget, each with its own edits", async () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const second = view(model);
    expect(model.sentMessages.filter((m) => (m as { type: string }).type === "ping").length).toBe(1);
    model.delta(updates[1]!);
    vi.advanceTimersByTime(50);
    for (const r of [root, second.root]) expect(r.dataset.nTokens).toBe(String(updates[1]!.header.n_tokens));
    type(second.root.querySelector("textarea") as HTMLTextAreaElement, "Paris is the capital");
    const [edit] = model.edits();
    expect(edit?.text).toBe("Paris is the capital");
    expect(second.root.dataset.busy).toBe("true");
    expect(root.dataset.busy).toBe("false"); // the other view has no typing of its own
    model.message({ type: "edit_done", view: edit!.view, edit: edit!.edit });
    expect(second.root.dataset.busy).toBe("false");
    second.cleanup();
    model.delta(updates[2]!); // the first view still gets the widget's updates
    vi.advanceTimersByTime(50);
    expect(root.dataset.nTokens).toBe(String(updates[2]!.header.n_tokens));
  });

  it("renders on a host that never calls initialize, and the last view frees the state", () => {
    const model = new FakeModel({ snapshot: updates[0] });
    const first = view(model);
    const second = view(model);
    first.cleanup();
    expect(model.listenerCount()).toBeGreaterThan(0);
    second.cleanup();
    expect(model.listenerCount()).toBe(0);
  });

  it("cleans up every listener and its DOM", () => {
    const { model, host, cleanup } = mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(host.childElementCount).toBe(0);
  });
});

/** happy-dom has no 2D context: a recording one stands in, and counts the heatmap's paints (each
 * sizes its canvas and asks for its context once). */
function countPaints(): { heatmap: number } {
  const counts = { heatmap: 0 };
  const ctx = new Proxy({} as Record<string, unknown>, {
    get: (target, key: string) => (key in target ? target[key] : () => ({ width: 7 })),
    set: (target, key: string, value) => ((target[key] = value), true),
  });
  vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(function (this: HTMLCanvasElement) {
    if (this.classList.contains("lw-canvas")) counts.heatmap += 1;
    return ctx as never;
  });
  return counts;
}

/** The state with columns 11 … 17 pending (updates[4]), whose cells 11 … 12 come next (updates[5]). */
async function pendingColumns(model: FakeModel): Promise<void> {
  for (const update of updates.slice(1, 5)) model.delta(update);
  await frame();
  expect(updates[5]!.header).toMatchObject({ kind: "cells", cell_start: 11, cell_end: 13 });
}

describe("work in proportion to what changed (a long paste arrives as many updates)", () => {
  afterEach(() => vi.restoreAllMocks());

  it("paints the heatmap when a column on screen changed, not for pending cells off screen, a snapshot it has or another view's message", async () => {
    const counts = countPaints();
    const { model, root } = mount(); // 600 px: columns 0 … 9 on screen
    await pendingColumns(model);
    const painted = counts.heatmap;
    const pending = Number(root.dataset.pending);
    expect(painted).toBeGreaterThan(0);
    model.delta(updates[5]!);
    await frame();
    expect(Number(root.dataset.pending)).toBe(pending - 2); // taken…
    expect(counts.heatmap).toBe(painted); // …and nothing on screen to paint
    model.kernel("snapshot", { ...updates[0]!, header: { ...updates[0]!.header, seq: updates[5]!.header.seq } });
    model.message({ type: "column", view: "another view", seq: 1, col: 0 });
    await frame();
    expect(counts.heatmap).toBe(painted);
    const scroller = root.querySelector(".lw-scroll") as HTMLElement;
    Object.defineProperty(scroller, "scrollLeft", { get: () => 11 * 58, set: () => undefined });
    scroller.dispatchEvent(new Event("scroll")); // the filled columns come into view: drawn
    await frame();
    expect(counts.heatmap).toBe(painted + 1);

    const wide = mount(); // 1,200 px: the same cells land on screen
    Object.defineProperty(wide.root.querySelector(".lw-scroll"), "clientWidth", { get: () => 1200 });
    await pendingColumns(wide.model);
    const before = counts.heatmap;
    wide.model.delta(updates[5]!);
    await frame();
    expect(counts.heatmap).toBe(before + 1);
  });

  it("asks the kernel for the panel's column again when the text changes, not when pending cells arrive", () => {
    vi.useFakeTimers();
    const { model } = mount();
    const asked = () => model.sentMessages.filter((m) => (m as { type?: string }).type === "column").length;
    for (const update of updates.slice(1, 5)) model.delta(update);
    vi.advanceTimersByTime(200);
    expect(asked()).toBe(1); // the last column, once things settled
    model.delta(updates[5]!); // cells: a column's answer (read from the kernel's hidden states) is the same
    vi.advanceTimersByTime(200);
    expect(asked()).toBe(1);
    model.delta(updates[6]!); // the text changed
    vi.advanceTimersByTime(200);
    expect(asked()).toBe(2);
  });

  it("asks once for the writers of the cell it explains, and again when the text changes", () => {
    vi.useFakeTimers();
    const { model, root } = mount();
    const asked = () => model.sentMessages.filter((m) => (m as { type?: string }).type === "attribution").length;
    for (const update of updates.slice(1, 6)) model.delta(update); // the last one: pending cells
    vi.advanceTimersByTime(200);
    const grid = root.querySelector(".lw-scroll") as HTMLElement;
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true })); // the first cell
    grid.dispatchEvent(new KeyboardEvent("keydown", { key: "w", bubbles: true }));
    vi.advanceTimersByTime(200);
    expect(asked()).toBe(1);
    model.delta(updates[6]!);
    vi.advanceTimersByTime(200);
    expect(asked()).toBe(2);
  });

  it("leaves its DOM as it is when a kernel message changes nothing it shows", async () => {
    const { model, root } = mount();
    await pendingColumns(model);
    const records: MutationRecord[] = [];
    const observer = new MutationObserver((list) => records.push(...list));
    observer.observe(root, { subtree: true, attributes: true, childList: true, characterData: true });
    model.message({ type: "pong", view: "another view" });
    model.kernel("snapshot", { ...updates[0]!, header: { ...updates[0]!.header, seq: updates[4]!.header.seq } });
    await frame();
    observer.disconnect();
    const what = (r: MutationRecord): string => `${r.type} ${(r.target as Element).className ?? r.target.nodeName} ${r.attributeName ?? ""}`;
    expect(records.map(what)).toEqual([]);
  });
});
