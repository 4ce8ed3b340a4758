// Light or dark, as the host says. Each host marks dark mode its own way; read at draw time.

import { PALETTES } from "./constants";

export function isDark(el: Element): boolean {
  const doc = el.ownerDocument;
  const body = doc.body;
  const html = doc.documentElement;
  const jp = body?.getAttribute("data-jp-theme-light");
  if (jp === "false") return true;
  if (jp === "true") return false;
  // High Contrast Light carries both vscode-high-contrast-light and vscode-high-contrast.
  if (body?.classList.contains("vscode-light") || body?.classList.contains("vscode-high-contrast-light")) return false;
  if (body?.classList.contains("vscode-dark") || body?.classList.contains("vscode-high-contrast")) return true;
  const vscodeKind = body?.getAttribute("data-vscode-theme-kind") ?? "";
  if (vscodeKind) return vscodeKind.includes("dark") || vscodeKind === "vscode-high-contrast";
  if (html.getAttribute("theme") === "dark") return true; // Colab
  if (body?.classList.contains("dark") || html.classList.contains("dark")) return true; // marimo
  const view = doc.defaultView;
  return Boolean(view?.matchMedia?.("(prefers-color-scheme: dark)").matches);
}

export interface Palette {
  background: string;
  text: string;
  muted: string;
  grid: string;
  missing: string;
  /** Hatching of cells whose logits were NaN or infinite. */
  invalid: string;
  accent: string;
}

export function palette(dark: boolean): Palette {
  return dark ? PALETTES.dark : PALETTES.light;
}

/** Calls `onChange` when the host's theme may have changed; returns the cleanup. */
export function watchTheme(el: Element, onChange: () => void): () => void {
  const doc = el.ownerDocument;
  const view = doc.defaultView;
  const observer = typeof MutationObserver === "undefined" ? null : new MutationObserver(onChange);
  for (const target of [doc.documentElement, doc.body]) {
    if (target) observer?.observe(target, { attributes: true, attributeFilter: ["class", "theme", "data-jp-theme-light", "data-vscode-theme-kind"] });
  }
  const query = view?.matchMedia?.("(prefers-color-scheme: dark)");
  query?.addEventListener?.("change", onChange);
  return () => {
    observer?.disconnect();
    query?.removeEventListener?.("change", onChange);
  };
}
