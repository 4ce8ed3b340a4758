// Which host the view runs in, where the kernel must treat it differently, as far as the page says.

/** A host the kernel treats differently: lens_widget/controller.py HOSTS. */
export type Host = "" | "vscode";

/** What the view's ping tells the kernel of its host: "vscode", else "". VS Code neither saves
 * nor replays widget state (vscode-jupyter #4404, #11117), so the kernel need not keep resending
 * the whole snapshot while the user types, and its extension host carries binary buffers as JSON
 * arrays of numbers, so the kernel sends typing's deltas as base64 text. Its webview marks the
 * body with its theme, which is how the view knows it is there. */
export function hostOf(doc: Document): Host {
  const body = doc.body;
  if (!body) return "";
  if (body.hasAttribute("data-vscode-theme-kind")) return "vscode";
  const vscode = [...body.classList].some((name) => name === "vscode-light" || name === "vscode-dark" || name.startsWith("vscode-high-contrast"));
  return vscode ? "vscode" : "";
}
