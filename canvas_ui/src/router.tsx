// The pages and the History API: the server answers index.html for every UI path.

import { useEffect, useState } from "react";

export type Route =
  | { page: "campaigns" }
  | { page: "editor"; campaignId: number | null }
  | { page: "report"; campaignId: number }
  | { page: "live" };

export function parseRoute(path: string): Route {
  const match = /^\/campaigns\/(\d+|new)\/?$/.exec(path);
  if (match) return { page: "editor", campaignId: match[1] === "new" ? null : Number(match[1]) };
  const report = /^\/campaigns\/(\d+)\/report\/?$/.exec(path);
  if (report) return { page: "report", campaignId: Number(report[1]) };
  if (/^\/live\/?$/.test(path)) return { page: "live" };
  return { page: "campaigns" };
}

/**
 * Asked before the page changes (a link, navigate(), the browser's back and forward): it
 * returns true when it holds the navigation (it calls `proceed` later, if the user agrees).
 * One at a time: the editor sets it while it has unsaved changes.
 */
export type LeaveGuard = (proceed: () => void) => boolean;
let guard: LeaveGuard | null = null;

/** Install the guard (null removes it); returns a function removing it again, for effects. */
export function setLeaveGuard(next: LeaveGuard | null): () => void {
  guard = next;
  return () => {
    if (guard === next) guard = null;
  };
}

/** What a page keeps in its history entry; `editorKey` keeps the editor mounted across the
 *  URL change of a first save (/campaigns/new to /campaigns/<id>), and so its undo history. */
export interface PageState {
  editorKey?: string;
}

/** Go to `path` (asking the leave guard first unless `force`). */
export function navigate(path: string, replace = false, options: { state?: PageState; force?: boolean } = {}): void {
  const go = () => {
    if (replace) history.replaceState(options.state ?? null, "", path);
    else history.pushState(options.state ?? null, "", path);
    shown = location.pathname;
    window.dispatchEvent(new PopStateEvent("popstate", { state: options.state ?? null }));
  };
  if (!options.force && guard?.(go)) return;
  go();
}

/** The path on screen: the browser's back button changes the URL before anyone is asked,
 *  so a guarded pop puts it back and asks. */
let shown = typeof location === "undefined" ? "/" : location.pathname;

export function useRoute(): Route & { editorKey?: string } {
  const read = () => ({ ...parseRoute(location.pathname), editorKey: (history.state as PageState | null)?.editorKey });
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = (event: PopStateEvent) => {
      if (event.isTrusted && location.pathname !== shown && guard) {
        const target = location.pathname + location.search;
        const state = event.state as PageState | null;
        const proceed = () => navigate(target, false, { state: state ?? undefined, force: true });
        history.pushState(null, "", shown); // back where we were, until the user decides
        if (!guard(proceed)) proceed();
        return;
      }
      shown = location.pathname;
      setRoute(read);
    };
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}

/** A same-page link: a real <a href> (open in new tab works), navigated without a reload. */
export function Link(props: {
  to: string;
  className?: string;
  children: React.ReactNode;
  title?: string;
  testId?: string;
  current?: boolean;
}) {
  return (
    <a
      href={props.to}
      className={props.className}
      title={props.title}
      data-testid={props.testId}
      aria-current={props.current ? "page" : undefined}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}
