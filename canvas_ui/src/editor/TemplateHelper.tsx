// For nodes that render content: the merge tags to insert, and a preview of the content for
// a chosen customer, rendered by the server's sandboxed template engine.

import { useEffect, useState } from "react";
import { api, errorText } from "../api";

interface MergeTag {
  label: string;
  tag: string;
  path: string;
  group: string;
}

type Rendered = Record<string, unknown>;

export function TemplateHelper(props: { channel: string; settings: Record<string, unknown>; onInsert: (tag: string) => void }) {
  const [tags, setTags] = useState<MergeTag[]>([]);
  useEffect(() => {
    api.get<{ items: MergeTag[] }>(`/api/merge-tags?channel=${encodeURIComponent(props.channel)}`).then((r) => setTags(r.items), () => setTags([]));
  }, [props.channel]);
  const groups = [...new Set(tags.map((t) => t.group))];
  return (
    <section className="cc-template-helper">
      <h4>Merge tags</h4>
      <p className="cc-hint">Click to insert at the cursor of the content field you were editing.</p>
      {groups.map((group) => (
        <div key={group} className="cc-tag-group">
          <span className="cc-tag-group-name">{group}</span>
          {tags.filter((t) => t.group === group).map((t) => (
            <button key={t.tag} type="button" className="cc-chip" title={t.tag} data-testid="merge-tag"
                    onMouseDown={(e) => e.preventDefault() /* keep the field's caret */} onClick={() => props.onInsert(t.tag)}>
              {t.label}
            </button>
          ))}
        </div>
      ))}
      <Preview channel={props.channel} settings={props.settings} />
    </section>
  );
}

function Preview(props: { channel: string; settings: Record<string, unknown> }) {
  const [who, setWho] = useState("");
  const [result, setResult] = useState<Rendered | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      const profileId = await resolveProfile(who);
      const { content, template_id: templateId } = props.settings;
      const answer = content
        ? await api.post<{ content: Rendered }>("/api/templates/preview", { channel: props.channel, content, profile_id: profileId })
        : templateId
          ? await api.post<{ content: Rendered }>(`/api/templates/${Number(templateId)}/preview`, { profile_id: profileId })
          : null;
      if (!answer) throw new Error("Choose a template or write content first.");
      setResult(answer.content);
    } catch (e) {
      setResult(null);
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="cc-preview">
      <h4>Preview</h4>
      <div className="cc-row">
        <input placeholder="Customer: id, email, phone or external id" value={who} aria-label="Preview customer"
               onChange={(e) => setWho(e.target.value)} onKeyDown={(e) => e.key === "Enter" && run()} />
        <button type="button" onClick={run} disabled={busy || !who.trim()}>Preview</button>
      </div>
      {error && <div className="cc-field-error" data-testid="preview-error">{error}</div>}
      {result && (
        <dl className="cc-preview-result" data-testid="preview-result">
          {Object.entries(result).map(([field, value]) => (
            <div key={field}>
              <dt>{field}</dt>
              <dd>
                {field === "html" && typeof value === "string"
                  // an email's HTML in a sandboxed frame: no scripts, no same-origin access
                  ? <iframe title="HTML preview" sandbox="" srcDoc={value} className="cc-preview-html" />
                  : <pre>{typeof value === "string" ? value : JSON.stringify(value, null, 2)}</pre>}
              </dd>
            </div>
          ))}
        </dl>
      )}
    </div>
  );
}

async function resolveProfile(who: string): Promise<number> {
  const text = who.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const found = await api.get<{ items: Array<{ id: number }> }>(`/api/profiles?limit=1&q=${encodeURIComponent(text)}`);
  if (!found.items.length) throw new Error(`No customer matches “${text}”.`);
  return found.items[0].id;
}
