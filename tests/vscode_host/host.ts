// A stand-in for VS Code's notebook webview, so the widget can be tested in the widget manager VS Code
// really uses (@vscode/jupyter-ipywidgets8) rather than JupyterLab's. Only what VS Code does that a
// widget can notice is reproduced:
// - the manager comes from the package's renderer entry point (activate(), then vscIPyWidgets8.load(),
//   which defines the @jupyter-widgets modules in requirejs and exposes its WidgetManager);
// - third-party widget code (anywidget) is loaded with requirejs from the kernel environment's
//   share/jupyter/nbextensions folder, as VS Code does offline (the tests serve that folder at
//   nbextensions/ beside this page);
// - an output is rendered only once it is scrolled into view (vscode-jupyter #17132);
// - every kernel message crosses an extension-host hop on which binary buffers become JSON number
//   arrays (turn it off with ?hop=0); each message's size before and after is recorded;
// - a document-level keydown listener stands for VS Code's keybindings, which get every key that
//   reaches the webview's window.
// - the body carries VS Code's theme markers (index.html), by which the view knows its host; ?vscode=0
//   takes them off, for a run where the view does not know it is in VS Code.
// The page is driven by tests/test_vscode.py and tests/benchmarks/bench_vscode.py through window.host.

import { type Kernel, type KernelMessage, KernelManager, ServerConnection } from "@jupyterlab/services";
import { activate } from "@vscode/jupyter-ipywidgets8";

const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";

/** What the manager asks of the host to load a module it does not bundle (VS Code's script loader). */
interface ScriptLoader {
  readonly widgetsRegisteredInRequireJs: Set<string>;
  loadWidgetScript(moduleName: string, moduleVersion: string): Promise<void>;
  successHandler(className: string, moduleName: string, moduleVersion: string): void;
  errorHandler(className: string, moduleName: string, moduleVersion: string, error: unknown): void;
}

/** The parts of ipywidgets' manager API the host calls (ManagerBase, as the package's manager extends). */
interface WidgetManager {
  get_model(modelId: string): Promise<unknown>;
  create_view(model: unknown, options?: object): Promise<unknown>;
  display_view(msg: unknown, view: unknown, options: { node: HTMLElement }): Promise<unknown>;
}

type WidgetManagerClass = new (
  kernel: Kernel.IKernelConnection,
  el: HTMLElement,
  scriptLoader: ScriptLoader,
  logger: (message: string) => void,
  widgetState?: unknown,
) => WidgetManager;

interface RequireJs {
  config(options: { paths: Record<string, string> }): void;
}

declare global {
  interface Window {
    requirejs?: RequireJs;
    vscIPyWidgets8?: { load(): void; unload(): void };
    vscIPyWidgets?: { WidgetManager: WidgetManagerClass };
    host: Host;
  }
}

/** One buffer of a message: which trait or message field it holds, its bytes, its characters as a
 * JSON number array. */
export interface CarriedBuffer {
  name: string;
  bytes: number;
  chars: number;
}

/** One kernel message as the hop saw it. frameBytes: the websocket frame from the server (the kernel's
 * JSON parts and raw buffers, plus their offsets); chars: the same message as one JSON string with its
 * buffers as number arrays, what VS Code's extension host carries (0 with the hop off); hopMs: what
 * making and reading that string took here. */
export interface Carried {
  t: number;
  direction: "in" | "out";
  channel: string;
  msgType: string;
  what: string;
  frameBytes: number;
  chars: number;
  hopMs: number;
  buffers: CarriedBuffer[];
}

interface Host {
  ready: boolean;
  failed: string;
  hop: boolean;
  messages: Carried[];
  /** Keys that reached the document: what VS Code's keybindings would have acted on. */
  keys: string[];
  /** When the last keydown started (epoch ms), seen before any handler can stop it. */
  lastKeydown: number;
  log: string[];
  /** Widget modules loaded through requirejs: the module, its version and the URL it came from. */
  scripts: { module: string; version: string; url: string }[];
  /** While watching: when (epoch ms) each animation frame found the widget's canvas changed. */
  pictureChanges: number[];
  now(): number;
  execute(code: string): Promise<{ output: string; error: string }>;
  shutdown(): Promise<void>;
  watchPictures(on: boolean): void;
}

const query = new URLSearchParams(location.search);
if (query.get("vscode") === "0") {
  document.body.className = "";
  document.body.removeAttribute("data-vscode-theme-kind");
}
const baseUrl = new URL(query.get("base") ?? "/", location.href).href;
const hostFolder = new URL(".", location.href).href;
const now = (): number => performance.timeOrigin + performance.now();

const host: Host = {
  ready: false,
  failed: "",
  hop: query.get("hop") !== "0",
  messages: [],
  keys: [],
  lastKeydown: 0,
  log: [],
  scripts: [],
  pictureChanges: [],
  now,
  execute: () => Promise.reject(new Error("the kernel is not connected yet")),
  shutdown: () => Promise.resolve(),
  watchPictures,
};
window.host = host;

function bytesOf(buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  return buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** A comm message's kind: its method and the traits it updates, or its custom message's type. */
function describe(msg: KernelMessage.IMessage): string {
  const data = (msg.content as { data?: { method?: string; state?: object; content?: { type?: unknown } } }).data;
  if (msg.header.msg_type === "comm_open") return `open ${Object.keys(data?.state ?? {}).length} traits`;
  if (msg.header.msg_type !== "comm_msg" || !data) return msg.header.msg_type;
  if (data.method === "custom") return `custom ${String(data.content?.type)}`;
  return `${data.method ?? "?"} ${Object.keys(data.state ?? {}).join(",")}`;
}

/** Each buffer's place in the message: a trait's buffer_paths entry, or the path of the
 * {"$buffer": i} marker that lens_widget's custom messages put where buffer i belongs. */
function bufferNames(msg: KernelMessage.IMessage): string[] {
  const names = (msg.buffers ?? []).map((_, i) => `buffer ${i}`);
  const data = (msg.content as { data?: { method?: string; buffer_paths?: unknown[][]; content?: unknown } }).data;
  data?.buffer_paths?.forEach((path, i) => {
    if (i < names.length) names[i] = path.join(".");
  });
  const walk = (value: unknown, path: string[]): void => {
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, String(i)]));
    else if (value && typeof value === "object") {
      const index = (value as Record<string, unknown>)["$buffer"];
      if (typeof index === "number" && index < names.length) names[index] = path.join(".");
      else for (const [key, item] of Object.entries(value)) walk(item, [...path, key]);
    }
  };
  if (data?.method === "custom") walk(data.content, []);
  return names;
}

/** The extension-host hop: the message becomes one JSON string with its buffers as number arrays, and
 * is rebuilt from it on the webview's side (buffers as DataViews again, as the manager expects). With
 * the hop off the message passes as it came, only recorded. */
function carry(msg: KernelMessage.IMessage, direction: "in" | "out", frameBytes: number): KernelMessage.IMessage {
  const started = now();
  const record = (chars: number, hopMs: number, sizes: { bytes: number; chars: number }[]): void => {
    const names = bufferNames(msg);
    const buffers = sizes.map((size, i) => ({ name: names[i] ?? `buffer ${i}`, ...size }));
    const what = describe(msg);
    host.messages.push({ t: started, direction, channel: msg.channel, msgType: msg.header.msg_type, what, frameBytes, chars, hopMs, buffers });
  };
  if (!host.hop) {
    record(0, 0, (msg.buffers ?? []).map((b) => ({ bytes: bytesOf(b).length, chars: 0 })));
    return msg;
  }
  const arrays = (msg.buffers ?? []).map((b) => Array.from(bytesOf(b)));
  const text = JSON.stringify({ ...msg, buffers: arrays });
  let carried = msg;
  if (direction === "in") {
    const parsed = JSON.parse(text) as { buffers: number[][] };
    const buffers = parsed.buffers.map((a) => new DataView(Uint8Array.from(a).buffer));
    carried = { ...(parsed as unknown as KernelMessage.IMessage), buffers };
  }
  const hopMs = now() - started; // what follows only measures
  record(text.length, hopMs, arrays.map((a) => ({ bytes: a.length, chars: JSON.stringify(a).length })));
  return carried;
}

function sizeOf(data: string | ArrayBuffer): number {
  return typeof data === "string" ? new TextEncoder().encode(data).length : data.byteLength;
}

/** The default serializer with the hop on each message that crosses it. */
function hopSerializer(): ServerConnection.ISettings["serializer"] {
  const plain = ServerConnection.makeSettings().serializer;
  return {
    serialize(msg, protocol) {
      const data = plain.serialize(msg, protocol);
      carry(msg, "out", sizeOf(data));
      return data;
    },
    deserialize(data, protocol) {
      return carry(plain.deserialize(data, protocol), "in", sizeOf(data));
    },
  };
}

/** VS Code's offline fallback: a module the manager does not bundle comes from the kernel
 * environment's nbextensions folder, registered with requirejs under its module name. */
function scriptLoader(): ScriptLoader {
  const registered = new Set<string>();
  return {
    widgetsRegisteredInRequireJs: registered,
    async loadWidgetScript(moduleName, moduleVersion) {
      const url = new URL(`nbextensions/${moduleName}/index`, hostFolder).href;
      window.requirejs?.config({ paths: { [moduleName]: url } });
      registered.add(moduleName);
      host.scripts.push({ module: moduleName, version: moduleVersion, url });
    },
    successHandler(className, moduleName, moduleVersion) {
      host.log.push(`loaded ${className} from ${moduleName}@${moduleVersion}`);
    },
    errorHandler(className, moduleName, moduleVersion, error) {
      host.log.push(`failed to load ${className} from ${moduleName}@${moduleVersion}: ${String(error)}`);
    },
  };
}

/** Whether the page scrolled to an output: VS Code renders a widget only then. */
function renderWhenVisible(manager: WidgetManager): (el: HTMLElement, modelId: string) => void {
  const pending = new Map<Element, string>();
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const modelId = pending.get(entry.target);
      if (!entry.isIntersecting || modelId === undefined) continue;
      observer.unobserve(entry.target);
      pending.delete(entry.target);
      void render(manager, entry.target as HTMLElement, modelId);
    }
  });
  return (el, modelId) => {
    pending.set(el, modelId);
    observer.observe(el);
  };
}

async function render(manager: WidgetManager, el: HTMLElement, modelId: string): Promise<void> {
  el.dataset.state = "rendering";
  try {
    const model = await manager.get_model(modelId);
    const view = await manager.create_view(model, {});
    await manager.display_view(undefined, view, { node: el });
    el.dataset.state = "rendered";
  } catch (error) {
    el.dataset.state = "failed";
    el.textContent = `Error displaying widget: ${String(error)}`;
  }
}

/** Runs code as a new cell: its text output is returned, its widget outputs wait to be scrolled to. */
function executor(kernel: Kernel.IKernelConnection, show: (el: HTMLElement, modelId: string) => void) {
  const cells = document.getElementById("cells") as HTMLElement;
  return async (code: string): Promise<{ output: string; error: string }> => {
    const cell = cells.appendChild(document.createElement("div"));
    cell.className = "vsc-cell";
    cell.appendChild(document.createElement("pre")).textContent = code;
    let output = "";
    let error = "";
    const future = kernel.requestExecute({ code, stop_on_error: true });
    future.onIOPub = (msg) => {
      const content = msg.content as { text?: string; data?: Record<string, unknown>; ename?: string; evalue?: string };
      if (msg.header.msg_type === "stream") output += content.text ?? "";
      if (msg.header.msg_type === "error") error += `${content.ename}: ${content.evalue}`;
      const spec = content.data?.[WIDGET_MIME] as { model_id?: string } | undefined;
      if ((msg.header.msg_type === "display_data" || msg.header.msg_type === "execute_result") && spec?.model_id) {
        const el = cell.appendChild(document.createElement("div"));
        el.className = "vsc-output";
        el.dataset.state = "waiting";
        el.dataset.modelId = spec.model_id;
        show(el, spec.model_id);
      }
    };
    await future.done;
    return { output, error };
  };
}

let watching = 0;

/** A checksum of the canvas's pixels: cheap enough to take on every frame (a PNG of it is not). */
function pixels(canvas: HTMLCanvasElement | null): string {
  if (!canvas || canvas.width === 0 || canvas.height === 0) return "";
  const context = canvas.getContext("2d");
  if (!context) return "";
  const data = new Uint32Array(context.getImageData(0, 0, canvas.width, canvas.height).data.buffer);
  let hash = 2166136261;
  for (let i = 0; i < data.length; i++) hash = Math.imul(hash ^ (data[i] ?? 0), 16777619);
  return `${canvas.width}x${canvas.height}:${hash >>> 0}`;
}

/** While on, compare the widget's canvas with the last frame's on every animation frame and note when
 * it changed in host.pictureChanges (the frame after the one the widget drew in). */
function watchPictures(on: boolean): void {
  watching += 1;
  if (!on) return;
  const run = watching;
  const canvas = (): HTMLCanvasElement | null => document.querySelector(".lens-widget .lw-canvas");
  let before = pixels(canvas());
  const check = (): void => {
    if (run !== watching) return;
    const picture = pixels(canvas());
    if (picture !== before) host.pictureChanges.push(now());
    before = picture;
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

function keyName(event: KeyboardEvent): string {
  const mods = [event.shiftKey && "Shift", event.ctrlKey && "Ctrl", event.altKey && "Alt", event.metaKey && "Cmd"];
  return [...mods.filter(Boolean), event.key].join("+");
}

async function start(): Promise<void> {
  window.addEventListener("keydown", () => void (host.lastKeydown = now()), { capture: true });
  document.addEventListener("keydown", (event) => void host.keys.push(keyName(event)));

  activate();
  const entry = window.vscIPyWidgets8;
  if (!entry || !window.requirejs) throw new Error("the renderer did not define vscIPyWidgets8, or requirejs is missing");
  entry.load();
  const WidgetManager = window.vscIPyWidgets?.WidgetManager;
  if (!WidgetManager) throw new Error("vscIPyWidgets8.load() did not define its WidgetManager");

  const serverSettings = ServerConnection.makeSettings({
    baseUrl,
    wsUrl: baseUrl.replace(/^http/, "ws"),
    token: query.get("token") ?? "",
    appendToken: true,
    serializer: hopSerializer(),
  });
  const kernels = new KernelManager({ serverSettings });
  const kernel = await kernels.startNew({ name: query.get("kernel") ?? "python3" });
  await kernel.info;
  const outputs = document.getElementById("cells") as HTMLElement;
  const manager = new WidgetManager(kernel, outputs, scriptLoader(), (message) => void host.log.push(message));
  host.execute = executor(kernel, renderWhenVisible(manager));
  host.shutdown = () => kernel.shutdown();
  host.ready = true;
}

start().catch((error: unknown) => {
  host.failed = String(error instanceof Error ? (error.stack ?? error.message) : error);
});
