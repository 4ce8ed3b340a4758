// The widget's per-model state, owned by anywidget's `initialize`: what the kernel has sent (the
// receiver and the vocabulary) and whether a kernel is there at all (the ping, and snapshot mode).
// Every view of the widget reads this one store, so a second view of the same widget decodes nothing
// twice and asks the kernel for nothing twice. Views subscribe and redraw on each change; their own
// typing, selection and scroll position stay theirs.
//
// anywidget hands `initialize` and `render` different proxies of the model, so a view finds its store
// by the widget's `instance` key (a trait set once in Python), within its widget manager.

import type { AnyModel } from "@anywidget/types";
import { hostOf } from "./host";
import type { Model } from "./model";
import { Receiver } from "./receiver";

/** How long the store waits for the kernel to answer its ping before it says it shows a snapshot. A
 * kernel busy with a long cell answers late; the store then leaves snapshot mode. */
export const PING_TIMEOUT_MS = 3000;

/** A change a view may need to act on: the kernel's message, when the change came with one. */
export type Listener = (message: unknown) => void;

/** A fresh id, so that answers can name who asked. */
export function newId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class Store {
  readonly received: Receiver;
  /** No kernel has answered the ping: the views show a saved picture (nbconvert, nbviewer, an
   * embedded or exported page, a notebook reopened without its kernel). */
  snapshotMode = false;
  readonly id = newId();
  private readonly listeners = new Set<Listener>();
  private readonly cleanups: (() => void)[] = [];
  private pingTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly model: AnyModel<Model>) {
    this.received = new Receiver((message) => this.send(message));
    this.on("change:snapshot", () => {
      // The snapshot catching up with the deltas a view already drew is the same picture: the views
      // need not hear of it.
      const { version, payloadError } = this.received;
      this.received.snapshot(model.get("snapshot"));
      return this.received.version !== version || this.received.payloadError !== payloadError;
    });
    this.on("change:vocabulary", () => this.received.vocabulary(model.get("vocabulary")));
    this.on("msg:custom", (message: unknown, buffers: unknown) => this.onMessage(message, buffers));
    this.received.vocabulary(model.get("vocabulary"));
    this.received.snapshot(model.get("snapshot"));
    this.ping();
    if (!this.received.state) this.received.requestFull();
  }

  /** Sends to the kernel; a static page's host may have no channel at all (and throw). */
  send(message: Record<string, unknown>): void {
    try {
      this.model.send(message);
    } catch {
      // No kernel: the ping's missing answer puts the views in snapshot mode.
    }
  }

  /** Is a kernel there? Its answer (or its silence) decides between live and snapshot mode. Each new
   * view asks again, so a kernel that came back is found. */
  ping(): void {
    if (this.pingTimer !== null) return;
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      this.snapshotMode = true;
      this.changed(null);
    }, PING_TIMEOUT_MS);
    // The host, for what the kernel sends it (js/host.ts): a page without a document tells none.
    this.send({ type: "ping", view: this.id, host: typeof document === "undefined" ? "" : hostOf(document) });
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onMessage(message: unknown, buffers: unknown): void {
    const m = message as { type?: unknown; view?: unknown; payload?: unknown } | null;
    if (m?.type === "update") {
      this.received.delta(m.payload, Array.isArray(buffers) ? buffers : []);
    } else if ((m?.type === "pong" || m?.type === "no_kernel") && m.view === this.id) {
      // "no_kernel": a host that knows it has none (lens_widget's exported page) says so at once.
      if (this.pingTimer !== null) clearTimeout(this.pingTimer);
      this.pingTimer = null;
      this.snapshotMode = m.type === "no_kernel";
    }
    this.changed(message);
  }

  /** Listens to the model; a trait's handler that returns false changed nothing the views show. */
  private on(name: string, fn: (...args: unknown[]) => boolean | void): void {
    const listener = (...args: unknown[]): void => {
      const changed = fn(...args);
      if (name !== "msg:custom" && changed !== false) this.changed(null);
    };
    this.model.on(name, listener);
    this.cleanups.push(() => this.model.off(name, listener));
  }

  private changed(message: unknown): void {
    for (const listener of [...this.listeners]) listener(message);
  }

  dispose(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    this.pingTimer = null;
    this.received.dispose();
    this.listeners.clear();
  }
}

interface Entry {
  store: Store;
  /** Holders: the widget's `initialize` and each view. */
  holders: number;
}

/** Stores by widget manager, then by the widget's `instance` key. */
const stores = new WeakMap<object, Map<string, Entry>>();
const NO_MANAGER = {};

/**
 * The widget's store, and the release of this hold on it. `initialize` takes the first hold, so the
 * store lives as long as the model; on a host that renders without initializing (or initializes once
 * per view) the views' holds keep it, and the last release disposes of it.
 */
export function holdStore(model: AnyModel<Model>): { store: Store; release: () => void } {
  const manager = (model.widget_manager as object | undefined) ?? NO_MANAGER;
  let byKey = stores.get(manager);
  if (!byKey) stores.set(manager, (byKey = new Map()));
  const map = byKey;
  const key = model.get("instance") || newId(); // a state saved before the key existed: not shared
  const entry = map.get(key) ?? { store: new Store(model), holders: 0 };
  map.set(key, entry);
  entry.holders += 1;
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    entry.holders -= 1;
    if (entry.holders > 0) return;
    if (map.get(key) === entry) map.delete(key);
    entry.store.dispose();
  };
  return { store: entry.store, release };
}

/** anywidget's `initialize`: the store lives as long as the widget's model. */
export function initialize({ model }: { model: AnyModel<Model> }): () => void {
  return holdStore(model).release;
}
