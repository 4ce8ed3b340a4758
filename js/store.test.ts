import { afterEach, describe, expect, it, vi } from "vitest";
import fixture from "./fixtures/payload_stream.json";
import type { Model } from "./model";
import type { Payload } from "./payload";
import { holdStore, initialize, PING_TIMEOUT_MS } from "./store";
import { revive } from "./testing";

const updates = revive(fixture.updates) as Payload[];

/** The part of anywidget's model a store uses. */
function fakeModel(instance: string, manager: object = {}) {
  const listeners = new Map<string, Set<(...args: unknown[]) => void>>();
  const sent: { type: string; view?: string }[] = [];
  const traits: Partial<Model> = { instance, snapshot: updates[0] as Payload, vocabulary: revive(fixture.vocabulary) as Model["vocabulary"] };
  const model = {
    widget_manager: manager,
    get: (key: keyof Model) => traits[key],
    send: (m: { type: string }) => sent.push(m),
    on: (name: string, fn: (...args: unknown[]) => void) => (listeners.get(name) ?? listeners.set(name, new Set()).get(name))!.add(fn),
    off: (name: string, fn: (...args: unknown[]) => void) => listeners.get(name)?.delete(fn),
  };
  const emit = (name: string, ...args: unknown[]) => listeners.get(name)?.forEach((fn) => fn(...args));
  const count = () => [...listeners.values()].reduce((n, s) => n + s.size, 0);
  return { model: model as never, sent, emit, count };
}

afterEach(() => vi.useRealTimers());

describe("Store", () => {
  it("is one per widget: holds of the same instance share it, other instances and managers do not", () => {
    const manager = {};
    const a = fakeModel("w1", manager);
    const stop = initialize({ model: a.model });
    const first = holdStore(a.model);
    const again = holdStore(fakeModel("w1", manager).model); // another proxy of the same widget
    expect(again.store).toBe(first.store);
    expect(holdStore(fakeModel("w2", manager).model).store).not.toBe(first.store);
    expect(holdStore(fakeModel("w1", {}).model).store).not.toBe(first.store); // another notebook's manager
    first.release();
    again.release();
    expect(a.count()).toBeGreaterThan(0); // initialize still holds it
    stop();
    expect(a.count()).toBe(0);
  });

  it("names its host in the ping: VS Code by its webview's theme markers, else none", () => {
    const plain = fakeModel("host-plain");
    const first = holdStore(plain.model);
    expect(plain.sent.find((m) => m.type === "ping")).toMatchObject({ host: "" });
    first.release();
    document.body.classList.add("vscode-dark");
    try {
      const vscode = fakeModel("host-vscode");
      const second = holdStore(vscode.model);
      expect(vscode.sent.find((m) => m.type === "ping")).toMatchObject({ host: "vscode" });
      second.release();
    } finally {
      document.body.classList.remove("vscode-dark");
    }
  });

  it("decodes the snapshot once, pings once, and takes snapshot mode when no kernel answers", () => {
    vi.useFakeTimers();
    const a = fakeModel("w3");
    const { store, release } = holdStore(a.model);
    expect(store.received.state?.nTokens).toBe(updates[0]!.header.n_tokens);
    store.ping();
    expect(a.sent.filter((m) => m.type === "ping").length).toBe(1);
    const seen: unknown[] = [];
    store.subscribe((message) => seen.push(message));
    vi.advanceTimersByTime(PING_TIMEOUT_MS + 1);
    expect(store.snapshotMode).toBe(true);
    a.emit("msg:custom", { type: "pong", view: store.id });
    expect(store.snapshotMode).toBe(false);
    expect(seen).toEqual([null, { type: "pong", view: store.id }]);
    release();
  });

  it("tells its views of a snapshot only when it changes what they show", () => {
    const a = fakeModel("w4");
    const { store, release } = holdStore(a.model);
    const seen: unknown[] = [];
    store.subscribe((message) => seen.push(message));
    a.emit("change:snapshot"); // the same snapshot again (the kernel catching it up after typing)
    expect(seen).toEqual([]);
    a.emit("change:vocabulary");
    expect(seen).toEqual([null]);
    release();
  });
});
