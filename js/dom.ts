// The DOM helpers the view's parts share: an element with its class, appended to its parent; and
// writes that happen only when they change something. A view refreshes its controls on every kernel
// message (a long paste brings a dozen), and in Chromium writing a property or an attribute the value
// it already has still invalidates style or layout, and the notebook's whole page is then restyled
// and laid out again at the next frame: the refreshes must cost what changed, not what was rewritten.

export function element<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, className: string, parent?: HTMLElement): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  node.className = className;
  parent?.appendChild(node);
  return node;
}

/** `target[key] = value`, unless it holds that already. */
export function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K]): void {
  if (target[key] !== value) target[key] = value;
}

/** An attribute set, unless it has that value already. */
export function attribute(el: Element, name: string, value: string): void {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/** A class added or removed, unless it is already so (some DOMs record a no-op toggle as a change). */
export function classed(el: Element, name: string, on: boolean): void {
  if (el.classList.contains(name) !== on) el.classList.toggle(name, on);
}

/** Data attributes set, each unless it has that value already. */
export function data(el: HTMLElement, values: Record<string, string>): void {
  for (const [key, value] of Object.entries(values)) if (el.dataset[key] !== value) el.dataset[key] = value;
}
