import { describe, expect, it } from "vitest";
import { DEFAULT_NEW_TOKENS, GenerationBar, MAX_NEW_TOKENS, tokenCount } from "./generation";

describe("GenerationBar", () => {
  it("asks for the count and row chosen, shows stop while writing, and offers B in A/B", () => {
    const parent = document.createElement("div");
    const asked: [number, number | null, string][] = [];
    let stopped = 0;
    const bar = new GenerationBar(document, parent, { generate: (n, row, m) => asked.push([n, row, m]), stop: () => stopped++ });
    const rows = [{ row: 0, label: "0" }, { row: 1, label: "<b>1</b>" }];
    bar.update({ generating: false, rows, names: [], disabled: false });
    const go = parent.querySelector(".lw-generate-go") as HTMLButtonElement;
    const stop = parent.querySelector(".lw-generate-stop") as HTMLButtonElement;
    const from = parent.querySelector(".lw-generate-from") as HTMLSelectElement;
    expect(stop.hidden).toBe(true);
    expect([...from.options].map((o) => o.textContent)).toEqual(["the output", "layer 0 (its lens)", "layer <b>1</b> (its lens)"]);
    expect(parent.querySelector("b")).toBeNull(); // labels as text
    go.click();
    from.value = "1";
    (parent.querySelector(".lw-generate-count") as HTMLInputElement).value = "7";
    go.click();
    expect(asked).toEqual([[DEFAULT_NEW_TOKENS, null, "a"], [7, 1, "a"]]);
    bar.update({ generating: true, rows, names: [], disabled: false });
    expect(stop.hidden).toBe(false);
    expect(go.disabled).toBe(true);
    stop.click();
    expect(stopped).toBe(1);
    bar.update({ generating: false, rows, names: ["base", "tuned"], disabled: false });
    const model = parent.querySelector(".lw-generate-model") as HTMLSelectElement;
    expect(model.hidden).toBe(false);
    expect(from.value).toBe("1"); // the choice survives an update
    model.value = "b";
    go.click();
    expect(asked.at(-1)).toEqual([7, 1, "b"]);
    bar.update({ generating: false, rows, names: [], disabled: true });
    expect(go.disabled).toBe(true);
    bar.dispose();
    expect(parent.querySelector(".lw-generate")).toBeNull();
  });

  it("reads the count within its bounds", () => {
    expect(tokenCount("12")).toBe(12);
    expect(tokenCount("0")).toBe(DEFAULT_NEW_TOKENS);
    expect(tokenCount("x")).toBe(DEFAULT_NEW_TOKENS);
    expect(tokenCount("1e9")).toBe(MAX_NEW_TOKENS);
    expect(tokenCount("3.7")).toBe(3);
  });
});
