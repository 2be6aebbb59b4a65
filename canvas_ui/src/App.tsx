import { lazy, Suspense, useEffect, useState } from "react";
import { currentUser, errorText } from "./api";
import { CampaignsPage } from "./campaigns/CampaignsPage";
import { Link, useRoute, type Route } from "./router";
import type { Me } from "./types";

// loaded when first opened: the editor brings React Flow, the settings forms and their schema
// compiler, the report the chart library; the campaigns list needs none of them
const Editor = lazy(() => import("./editor/Editor").then((m) => ({ default: m.Editor })));
const ReportPage = lazy(() => import("./report/ReportPage"));
const LivePage = lazy(() => import("./live/LivePage"));

function Page({ route, me }: { route: Route & { editorKey?: string }; me: Me }) {
  switch (route.page) {
    case "editor":
      // a first save moves the editor to its campaign's URL keeping its key: same editor, same undo history
    {
      const key = route.editorKey ?? String(route.campaignId ?? "new");
      return <Editor key={key} editorKey={key} campaignId={route.campaignId} me={me} />;
    }
    case "report":
      return <ReportPage key={route.campaignId} campaignId={route.campaignId} />;
    case "live":
      return <LivePage />;
    default:
      return <CampaignsPage me={me} />;
  }
}

export function App() {
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    currentUser().then(setMe, (e) => setError(errorText(e)));
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/" className="brand">Campaign Canvas</Link>
        <nav className="topnav" aria-label="Pages">
          <Link to="/" current={route.page === "campaigns"} testId="nav-campaigns">Campaigns</Link>
          <Link to="/live" current={route.page === "live"} testId="nav-live">Live</Link>
        </nav>
        <span className="spacer" />
        {me && (
          <form method="post" action="/logout" className="who">
            <span data-testid="who">{me.name} ({me.role})</span>
            <input type="hidden" name="csrf_token" value={me.csrf_token ?? ""} />
            <button type="submit" className="link">Log out</button>
          </form>
        )}
      </header>
      {error && <div className="banner error">{error}</div>}
      {me && (
        <Suspense fallback={<div className="page page-loading" data-testid="page-loading">Loading…</div>}>
          <Page route={route} me={me} />
        </Suspense>
      )}
    </div>
  );
}
