// Cleanups collected as listeners are added, run once: every part of a view removes what it added.

import type { AnyModel } from "@anywidget/types";
import type { Model } from "./model";

export class Disposer {
  private readonly cleanups: (() => void)[] = [];

  add(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  listen<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (event: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, fn as EventListener);
    this.add(() => target.removeEventListener(type, fn as EventListener));
  }

  on(model: AnyModel<Model>, name: string, fn: (...args: unknown[]) => void): void {
    model.on(name, fn);
    this.add(() => model.off(name, fn));
  }

  /** A timer that is cleared on dispose, and replaced when set again. */
  timer(): { set(fn: () => void, ms: number): void; clear(): void; readonly active: boolean } {
    let handle: ReturnType<typeof setTimeout> | null = null;
    const timer = {
      set(fn: () => void, ms: number): void {
        timer.clear();
        handle = setTimeout(() => {
          handle = null;
          fn();
        }, ms);
      },
      clear(): void {
        if (handle !== null) clearTimeout(handle);
        handle = null;
      },
      get active(): boolean {
        return handle !== null;
      },
    };
    this.add(() => timer.clear());
    return timer;
  }

  dispose(): void {
    for (const cleanup of this.cleanups.splice(0).reverse()) cleanup();
  }
}
