import { afterEach, describe, expect, it } from "vitest";
import { isDark, palette, watchTheme } from "./theme";

afterEach(() => {
  for (const el of [document.body, document.documentElement]) {
    for (const name of el.getAttributeNames()) if (name !== "lang") el.removeAttribute(name);
    el.className = "";
  }
});

describe("isDark follows each host's own marker", () => {
  const el = () => document.body.appendChild(document.createElement("div"));

  it("JupyterLab", () => {
    document.body.setAttribute("data-jp-theme-light", "false");
    expect(isDark(el())).toBe(true);
    document.body.setAttribute("data-jp-theme-light", "true");
    expect(isDark(el())).toBe(false);
  });

  it("VS Code", () => {
    document.body.classList.add("vscode-dark");
    expect(isDark(el())).toBe(true);
    document.body.className = "";
    document.body.setAttribute("data-vscode-theme-kind", "vscode-light");
    expect(isDark(el())).toBe(false);
  });

  it("VS Code High Contrast Light, which also carries the plain high-contrast class", () => {
    document.body.classList.add("vscode-high-contrast", "vscode-high-contrast-light");
    document.body.setAttribute("data-vscode-theme-kind", "vscode-high-contrast-light");
    expect(isDark(el())).toBe(false);
    document.body.className = "vscode-high-contrast";
    document.body.setAttribute("data-vscode-theme-kind", "vscode-high-contrast");
    expect(isDark(el())).toBe(true);
  });

  it("Colab and marimo", () => {
    document.documentElement.setAttribute("theme", "dark");
    expect(isDark(el())).toBe(true);
    document.documentElement.removeAttribute("theme");
    document.body.classList.add("dark");
    expect(isDark(el())).toBe(true);
  });

  it("gives distinct palettes", () => {
    expect(palette(true).background).not.toBe(palette(false).background);
  });

  it("notices a theme switch", async () => {
    let calls = 0;
    const stop = watchTheme(el(), () => calls++);
    document.body.setAttribute("data-jp-theme-light", "false");
    await new Promise((r) => setTimeout(r, 0));
    stop();
    document.body.setAttribute("data-jp-theme-light", "true");
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toBe(1);
  });
});
