import { useEffect, useState } from "react";
import { currentUser, errorText } from "./api";
import { CampaignsPage } from "./campaigns/CampaignsPage";
import { Editor } from "./editor/Editor";
import { Link, useRoute } from "./router";
import type { Me } from "./types";

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
      {me && (route.page === "editor"
        ? <Editor key={route.campaignId ?? "new"} campaignId={route.campaignId} me={me} />
        : <CampaignsPage me={me} />)}
    </div>
  );
}
