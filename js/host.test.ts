import { afterEach, describe, expect, it } from "vitest";
import { hostOf } from "./host";

afterEach(() => {
  document.body.className = "";
  document.body.removeAttribute("data-vscode-theme-kind");
  document.body.removeAttribute("data-jp-theme-light");
});

describe("hostOf", () => {
  it("is '' in a page with no VS Code markers (JupyterLab, Notebook, Colab, a static page)", () => {
    document.body.setAttribute("data-jp-theme-light", "true");
    expect(hostOf(document)).toBe("");
  });

  it("is 'vscode' in VS Code's webview, by its theme class or its theme-kind attribute", () => {
    for (const name of ["vscode-light", "vscode-dark", "vscode-high-contrast", "vscode-high-contrast-light"]) {
      document.body.className = name;
      expect(hostOf(document)).toBe("vscode");
    }
    document.body.className = "";
    document.body.setAttribute("data-vscode-theme-kind", "vscode-dark");
    expect(hostOf(document)).toBe("vscode");
  });

  it("is not fooled by a class that only begins like VS Code's", () => {
    document.body.className = "vscode-like-theme";
    expect(hostOf(document)).toBe("");
  });
});
