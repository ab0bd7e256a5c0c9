// Starting a deploy or a rollback: the API answers with the deployment's event stream and its
// id in X-Deployment-ID. The id is all the dashboard needs from that answer: the Deployment
// page follows the stream by itself (GET .../events, resumable), so this one is let go.
import { errorText } from "./api";
import { authHeaders } from "./sse";
import { session } from "./session.svelte";

export const ARCHIVE_TYPES: [string, string][] = [
  [".tar.gz", "application/gzip"], [".tgz", "application/gzip"],
  [".tar", "application/x-tar"], [".zip", "application/zip"],
];

/** The Content-Type of an archive by its name; null when the API takes no such archive. */
export function archiveType(name: string): string | null {
  const lower = name.toLowerCase();
  return ARCHIVE_TYPES.find(([ending]) => lower.endsWith(ending))?.[1] ?? null;
}

/** POST a deploy or rollback; the new deployment's id, or throws the API's message. */
export async function startDeployment(path: string, body: BodyInit, contentType: string,
                                      query: Record<string, string> = {}): Promise<string> {
  const search = new URLSearchParams(query).toString();
  const response = await fetch(path + (search ? `?${search}` : ""), {
    method: "POST", body, headers: authHeaders({ "Content-Type": contentType }),
  });
  if (!response.ok) {
    if (response.status === 401 && session.token) session.expire();
    const detail = await response.json().catch(() => null);
    throw new Error(errorText(detail) || `${response.status} ${response.statusText}`);
  }
  const id = response.headers.get("X-Deployment-ID");
  await response.body?.cancel().catch(() => {});
  if (!id) throw new Error("the API did not name the deployment");
  return id;
}

/** What a deployment deployed, in a few words. */
export function sourceText(kind: string, source: Record<string, unknown>): string {
  const short = (value: unknown) => String(value ?? "").slice(0, 8);
  switch (kind) {
    case "git": return `git ${source.url}${source.ref ? ` @ ${source.ref}` : ""}`;
    case "image": return `image ${source.image}`;
    case "rollback": return `rollback to ${short(source.release)}`;
    case "release": return `new variables on ${short(source.release)}`;
    case "archive": return source.commit ? `upload of commit ${short(source.commit)}` : "upload";
    default: return kind;
  }
}

/** A time as this browser's locale writes it. */
export function when(time: unknown): string {
  return time ? new Date(String(time)).toLocaleString() : "";
}
