// The one way the UI talks to the server: JSON in and out, the session cookie, and the
// CSRF token every change made with a cookie must carry (engine/web/access.py).

import type { Me } from "./types";

/** The server's error shape `{"error": {code, message, details}}`, as an exception. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Array<{ pointer?: string; message?: string; [key: string]: unknown }> = [],
  ) {
    super(message);
  }
}

let me: Promise<Me> | null = null;

/** Who is logged in (and the session's CSRF token); fetched once per page. */
export function currentUser(): Promise<Me> {
  me ??= request<Me>("GET", "/api/auth/me").catch((error) => {
    me = null;
    throw error;
  });
  return me;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = (await currentUser()).csrf_token;
    if (token) headers["X-CSRF-Token"] = token;
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, "unauthorized", "Your session has ended; log in again.");
  }
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? "error", error.message ?? response.statusText, error.details ?? []);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  delete: <T>(path: string) => request<T>("DELETE", path),
};

/** A message for the user from anything thrown. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    const first = error.details.find((d) => d.message);
    return first && !error.message.includes(String(first.message)) ? `${error.message} (${first.message})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
