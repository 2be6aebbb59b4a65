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

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
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
