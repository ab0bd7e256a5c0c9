// Hash routes (`#/projects/web`): the API serves one page at `/`, whatever the route.
class Router {
  path = $state(currentPath());

  constructor() {
    window.addEventListener("hashchange", () => (this.path = currentPath()));
  }

  /** The parts of the path: `#/projects/web/services/api` -> ["projects", "web", ...]. */
  get parts(): string[] {
    return this.path.split("/").filter(Boolean).map(decodeURIComponent);
  }

  get query(): URLSearchParams {
    return new URLSearchParams(location.hash.split("?")[1] ?? "");
  }
}

function currentPath(): string {
  return (location.hash.replace(/^#/, "").split("?")[0]) || "/";
}

export const router = new Router();

/** The href of a route made of parts, each one escaped. */
export function href(...parts: string[]): string {
  return "#/" + parts.map(encodeURIComponent).join("/");
}

export function go(...parts: string[]): void {
  location.hash = href(...parts);
}
