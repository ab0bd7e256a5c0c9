// The API's typed client, generated from its OpenAPI document (`npm run types`).
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { session } from "./session.svelte";

export type Schemas = components["schemas"];
export const api = createClient<paths>({ baseUrl: "" });

const credentials: Middleware = {
  onRequest({ request }) {
    if (session.token) request.headers.set("Authorization", `Bearer ${session.token}`);
    if (session.workspaceId) request.headers.set("X-Dockyard-Workspace", session.workspaceId);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && session.token) session.expire();
    return response;
  },
};
api.use(credentials);

/** The message of an API error body, as a person can read it. */
export function errorText(error: unknown): string {
  if (error == null) return "";
  if (typeof error === "string") return error;
  const detail = (error as { detail?: unknown }).detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map(validationText).join("; ");
  if (error instanceof Error) return error.message;
  return JSON.stringify(error);
}

function validationText(item: { loc?: (string | number)[]; msg?: string }): string {
  const where = (item.loc ?? []).filter((part) => part !== "body").join(".");
  return where ? `${where}: ${item.msg}` : `${item.msg}`;
}

/** Throws the API's message when a call failed; returns its data otherwise. */
export function must<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    throw new Error(errorText(result.error) || `${result.response.status} ${result.response.statusText}`);
  }
  return result.data as T;
}
