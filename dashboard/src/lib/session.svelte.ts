// Who is signed in, in which workspace. The token lives in this browser's localStorage so a
// reload keeps the session; signing out ends it on the server too.
import type { components } from "./schema";

type WhoAmI = components["schemas"]["WhoAmI"];
const TOKEN_KEY = "dockyard.token";
const WORKSPACE_KEY = "dockyard.workspace";

class Session {
  token = $state<string | null>(localStorage.getItem(TOKEN_KEY));
  workspaceId = $state<string | null>(localStorage.getItem(WORKSPACE_KEY));
  me = $state<WhoAmI | null>(null);
  expired = $state(false);

  get canDeploy(): boolean {
    return this.me !== null && this.me.role !== "viewer";
  }

  get isAdmin(): boolean {
    return this.me?.role === "owner" || this.me?.role === "admin";
  }

  signIn(token: string): void {
    this.token = token;
    this.expired = false;
    localStorage.setItem(TOKEN_KEY, token);
  }

  useWorkspace(id: string | null): void {
    this.workspaceId = id;
    if (id) localStorage.setItem(WORKSPACE_KEY, id);
    else localStorage.removeItem(WORKSPACE_KEY);
  }

  forget(): void {
    this.token = null;
    this.me = null;
    localStorage.removeItem(TOKEN_KEY);
  }

  expire(): void {
    this.forget();
    this.expired = true;
  }
}

export const session = new Session();
