// Server-Sent Events over fetch (EventSource cannot send the Authorization header). A stream
// that breaks is resumed with Last-Event-ID, so no event is lost or shown twice.
import { errorText } from "./api";
import { session } from "./session.svelte";

export interface StreamEvent {
  id: number;
  kind: string;
  data: Record<string, unknown>;
}

const RETRY_MS = 1000;

/** Parse one stream's frames, calling `onEvent` for each; returns when the body ends. */
export async function readFrames(body: ReadableStream<Uint8Array>, onEvent: (e: StreamEvent) => void): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream() as ReadableWritablePair<string, Uint8Array>).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (frame) onEvent(frame);
    }
  }
}

function parseFrame(text: string): StreamEvent | null {
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    fields[name] = (fields[name] ? fields[name] + "\n" : "") + line.slice(colon + 1).replace(/^ /, "");
  }
  if (fields.data === undefined) return null;
  return { id: Number(fields.id ?? 0), kind: fields.event ?? "message", data: JSON.parse(fields.data) };
}

export function authHeaders(extra: Record<string, string> = {}): Headers {
  const headers = new Headers(extra);
  if (session.token) headers.set("Authorization", `Bearer ${session.token}`);
  if (session.workspaceId) headers.set("X-Dockyard-Workspace", session.workspaceId);
  return headers;
}

/** Follow a GET stream until `isLast(event)` or `signal` aborts, resuming after breaks. */
export async function follow(url: string, after: number, onEvent: (e: StreamEvent) => void,
                             isLast: (e: StreamEvent) => boolean, signal: AbortSignal,
                             onState: (state: string) => void = () => {}): Promise<void> {
  let lastId = after;
  let finished = false;
  const seen = (event: StreamEvent) => {
    if (event.id && event.id <= lastId) return;
    lastId = event.id || lastId;
    onEvent(event);
    if (isLast(event)) finished = true;
  };
  while (!finished && !signal.aborted) {
    try {
      const response = await fetch(url, { headers: authHeaders({ "Last-Event-ID": String(lastId) }), signal });
      if (!response.ok) throw new Error(errorText(await response.json().catch(() => response.statusText)));
      onState("live");
      await readFrames(response.body!, seen);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Error && !(error instanceof TypeError)) throw error;
    }
    if (!finished && !signal.aborted) {
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}
