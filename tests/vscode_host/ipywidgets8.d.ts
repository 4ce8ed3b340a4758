// What the host page uses of @vscode/jupyter-ipywidgets8, which ships no type declarations: its
// dist/ipywidgets.js is a notebook renderer module whose activate() defines window.vscIPyWidgets8.

declare module "@vscode/jupyter-ipywidgets8" {
  /** Defines window.vscIPyWidgets8 = { load, unload } (VS Code calls it when the renderer loads). */
  export function activate(): void;
}
