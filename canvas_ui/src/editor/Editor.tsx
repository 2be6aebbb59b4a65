// The campaign editor: palette, canvas, settings panel, toolbar. The graph lives in React
// Flow's nodes and edges; every change a user would call one step goes through `history`.

import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useLive } from "../live";
import { Choose } from "../Modal";
import { setLeaveGuard } from "../router";
import type { Campaign, CampaignStats, DocNode, Me, NodeUpgrade, Position, Problem } from "../types";
import { api, errorText } from "../api";
import { CampaignNode } from "./CampaignNode";
import { CampaignPanel } from "./CampaignPanel";
import { CountEdge } from "./CountEdge";
import { buildFragment, fragmentProblems, instantiate, parseFragment, share, sharedFragment, typingInField, type Fragment } from "./clipboard";
import { connectionProblem, declOf, missingVersions, newId, nodeLabel, toCanvasEdge, toCanvasNode, toDocument, typeMap, withDefaults, type CanvasEdge, type CanvasNode, type TypeMap } from "./graph";
import { useHistory, type Snapshot } from "./history";
import { autoLayout } from "./layout";
import { OverlayContext, problemsByNode } from "./overlay";
import { DRAG_TYPE, Palette } from "./Palette";
import { SettingsPanel } from "./SettingsPanel";
import { Toolbar } from "./Toolbar";
import { draftKey, dropDraft, tabId, writeDraft } from "./drafts";
import { loadVersions, NEW_DOCUMENT, useCampaignActions, useLoad, type Loaded, type Meta } from "./useCampaign";
import { useDynamicPorts, useValidation } from "./useChecks";
import "./editor.css";

const nodeTypes = { campaign: CampaignNode };
const edgeTypes = { count: CountEdge };
const GRID: [number, number] = [20, 20];
const LIVE_STATUSES = new Set(["active", "paused", "finished", "stopped", "suspended"]);
/** a draft campaign's changes go to the server this long after the last one */
const AUTOSAVE_AFTER_MS = 2000;

export function Editor(props: { campaignId: number | null; me: Me; editorKey: string }) {
  // the campaign it opened with: a first save changes the URL (and campaignId), not the editor
  const [opened] = useState(props.campaignId);
  const { loaded, error } = useLoad(opened);
  if (error) return <div className="banner error">{errorText(error)}</div>;
  if (!loaded) return <div className="page">Loading…</div>;
  return (
    <ReactFlowProvider>
      <Workspace loaded={loaded} me={props.me} editorKey={props.editorKey} />
    </ReactFlowProvider>
  );
}

/** What the editor starts with: the saved document, or this browser's unsaved changes to it
 *  when there are some (`restored`); `savedText` is the saved one as the canvas writes it. */
function startingPoint(loaded: Loaded, types: TypeMap) {
  const canvasText = (d: Loaded["document"]) =>
    JSON.stringify(toDocument(metaOf(d), d.nodes.map((n, i) => toCanvasNode(n, types, i)), d.edges.map(toCanvasEdge)));
  const savedText = canvasText(loaded.document);
  const draft = loaded.draft && canvasText(loaded.draft.document) !== savedText ? loaded.draft : null;
  return { savedText, document: draft?.document ?? loaded.document, restored: draft };
}

function Workspace({ loaded, me, editorKey }: { loaded: Loaded; me: Me; editorKey: string }) {
  const flow = useReactFlow<CanvasNode, CanvasEdge>();
  // the newest declarations (the palette's) and the old versions nodes are on, loaded as needed
  const [oldTypes, setOldTypes] = useState(loaded.oldTypes);
  const types: TypeMap = useMemo(() => typeMap(loaded.types, oldTypes), [loaded.types, oldTypes]);
  const readOnly = me.role === "viewer";
  const [start] = useState(() => startingPoint(loaded, types));
  const [nodes, setNodes] = useState<CanvasNode[]>(() => start.document.nodes.map((n, i) => toCanvasNode(n, types, i)));
  const [edges, setEdges] = useState<CanvasEdge[]>(() => start.document.edges.map(toCanvasEdge));
  const [meta, setMeta] = useState<Meta>(() => metaOf(start.document));
  const [restored, setRestored] = useState(start.restored);
  const { campaign, setCampaign, save, act } = useCampaignActions(loaded.campaign, editorKey);
  const [stats, setStats] = useState<CampaignStats | null>(null);
  const [message, setMessage] = useState<{ kind: "error" | "info"; text: string } | null>(null);
  const [placing, setPlacing] = useState<string | null>(null);
  const [openNode, setOpenNode] = useState<string | null>(null);
  const [focus, setFocus] = useState<{ pointer: string; at: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const pointer = useRef<Position | null>(null);

  // --- the graph, for history and for saving
  const graph = useRef<Snapshot>({ nodes, edges });
  graph.current = { nodes, edges };
  const current = useCallback(() => graph.current, []);
  const restore = useCallback((s: Snapshot) => { setNodes(s.nodes); setEdges(s.edges); }, []);
  const history = useHistory(current, restore);
  const document = useMemo(() => toDocument(meta, nodes, edges), [meta, nodes, edges]);
  const [savedText, setSavedText] = useState(start.savedText);
  const documentText = useMemo(() => JSON.stringify(document), [document]);
  const dirty = documentText !== savedText && !readOnly;
  const isDraft = campaign === null || campaign.status === "draft";

  // --- what the server says: problems, dynamic ports, live counts, status
  const checked = useValidation(documentText);
  const problems = checked.problems;
  const byNode = useMemo(() => problemsByNode(problems), [problems]);
  const errors = problems.filter((p) => p.severity !== "warning");
  const applyPorts = useCallback((id: string, ports: string[]) => {
    setNodes((all) => all.map((n) => (n.id === id && !sameList(n.data.ports, ports) ? { ...n, data: { ...n.data, ports } } : n)));
    setEdges((all) => all.filter((e) => e.source !== id || ports.includes(e.sourceHandle ?? "")));
  }, []);
  useDynamicPorts(nodes, types, applyPorts);
  const watching = campaign && LIVE_STATUSES.has(campaign.status) ? campaign.id : null;
  const readStats = useCallback(() => {
    if (watching) api.get<CampaignStats>(`/api/campaigns/${watching}/stats`).then(setStats, () => undefined);
  }, [watching]);
  useEffect(readStats, [readStats]);
  useLive(campaign ? { campaign_id: campaign.id } : null, {
    joined: readStats,
    stats: (s) => s.campaign_id === campaign?.id && setStats(s),
    status: (c: Campaign) => c.id === campaign?.id && setCampaign((old) => ({ ...old, ...c, document: old?.document })),
  });

  // --- changes from React Flow
  const onNodesChange = useCallback((changes: NodeChange<CanvasNode>[]) => {
    setNodes((all) => applyNodeChanges(changes, all));
  }, []);
  const onEdgesChange = useCallback((changes: EdgeChange<CanvasEdge>[]) => {
    setEdges((all) => applyEdgeChanges(changes, all));
  }, []);
  const onBeforeDelete = useCallback(async () => { history.record(); return true; }, [history]);
  const isValidConnection = useCallback((c: CanvasEdge | Connection) =>
    connectionProblem(c, graph.current.nodes, graph.current.edges, types) === null, [types]);
  const onConnect = useCallback((c: Connection) => {
    if (connectionProblem(c, graph.current.nodes, graph.current.edges, types)) return;
    history.record();
    setEdges((all) => [...all, toCanvasEdge({ id: newId("e"), source: c.source, source_port: c.sourceHandle ?? "out", target: c.target })]);
  }, [history, types]);
  const deleteEdge = useCallback((id: string) => {
    history.record();
    setEdges((all) => all.filter((e) => e.id !== id));
  }, [history]);

  // --- adding nodes: drop from the palette, or pick then click
  const addNode = useCallback((type: string, at: Position) => {
    const decl = types[type];
    if (!decl) return;
    history.record();
    const settings = withDefaults(decl, {});
    const node = { ...toCanvasNode({ id: newId("n"), type, version: decl.version, settings, position: at }, types), selected: true };
    setNodes((all) => [...all.map((n) => (n.selected ? { ...n, selected: false } : n)), node]);
    setOpenNode(node.id);
  }, [history, types]);
  const onDrop = useCallback((event: React.DragEvent) => {
    const type = event.dataTransfer.getData(DRAG_TYPE);
    if (!type || readOnly) return;
    event.preventDefault();
    addNode(type, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
  }, [addNode, flow, readOnly]);
  const onPaneClick = useCallback((event: React.MouseEvent) => {
    if (placing) {
      addNode(placing, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
      setPlacing(null);
    } else {
      setOpenNode(null);
    }
  }, [addNode, flow, placing]);

  // --- settings and labels: a burst of typing in one node is one undo step
  const updateNode = useCallback((id: string, change: Partial<CanvasNode["data"]>, key: string) => {
    history.record(`${key}:${id}`);
    setNodes((all) => all.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...change } } : n)));
  }, [history]);

  // --- upgrading a node on an old version: the server runs the type's migrations, one undo step
  const [upgrading, setUpgrading] = useState(false);
  const upgradeNode = useCallback(async (id: string) => {
    const node = graph.current.nodes.find((n) => n.id === id);
    if (!node || node.data.version === undefined) return;
    setUpgrading(true);
    try {
      const up = await api.post<NodeUpgrade>(`/api/node-types/${encodeURIComponent(node.data.nodeType)}/upgrade`,
                                             { version: node.data.version, settings: node.data.settings });
      history.record();
      const lost = upgradeOnCanvas(id, up, setNodes, setEdges, graph.current.edges);
      const dropped = lost ? ` ${lost} connection${lost === 1 ? "" : "s"} from ports version ${up.version} does not have ${lost === 1 ? "was" : "were"} removed.` : "";
      setMessage({ kind: "info", text: `Upgraded to version ${up.version}; save to keep it.${dropped}` });
    } catch (e) {
      setMessage({ kind: "error", text: `Not upgraded: ${errorText(e)}` });
    } finally {
      setUpgrading(false);
    }
  }, [history]);

  // --- copy and paste (document events: they work across tabs without clipboard permissions)
  const paste = useCallback(async (fragment: Fragment) => {
    // nodes copied on an old version of their type need that version's declaration here too
    const more = await loadVersions(missingVersions(fragment.nodes, types));
    const known = more.length ? typeMap(loaded.types, [...oldTypes, ...more]) : types;
    if (more.length) setOldTypes((old) => [...old, ...more]);
    const problemsFound = fragmentProblems(fragment, known);
    if (problemsFound.length) {
      setMessage({ kind: "error", text: `Nothing pasted: ${problemsFound.join("; ")}` });
      return;
    }
    const added = instantiate(fragment, pointer.current, known);
    history.record();
    setNodes((all) => [...all.map((n) => ({ ...n, selected: false })), ...added.nodes]);
    setEdges((all) => [...all.map((e) => ({ ...e, selected: false })), ...added.edges]);
    setMessage({ kind: "info", text: `Pasted ${added.nodes.length} node${added.nodes.length === 1 ? "" : "s"}.` });
  }, [history, types, loaded.types, oldTypes]);
  const copy = useCallback((clipboard: DataTransfer | null): boolean => {
    const fragment = buildFragment(graph.current.nodes, graph.current.edges);
    if (!fragment) return false;
    clipboard?.setData("text/plain", JSON.stringify(fragment));
    share(fragment);
    setMessage({ kind: "info", text: `Copied ${fragment.nodes.length} node${fragment.nodes.length === 1 ? "" : "s"}.` });
    return true;
  }, []);
  useEffect(() => {
    const onCopy = (event: ClipboardEvent) => {
      if (typingInField(event.target) || (window.getSelection()?.toString() ?? "") !== "") return;
      if (copy(event.clipboardData)) event.preventDefault();
    };
    const onPaste = (event: ClipboardEvent) => {
      if (typingInField(event.target) || readOnly) return;
      const text = event.clipboardData?.getData("text/plain") ?? "";
      // our fragment from the clipboard; else, when the clipboard gave nothing, the shared copy
      const fragment = parseFragment(text) ?? (text === "" ? sharedFragment() : null);
      if (!fragment) return;
      event.preventDefault();
      paste(fragment);
    };
    window.document.addEventListener("copy", onCopy);
    window.document.addEventListener("paste", onPaste);
    return () => {
      window.document.removeEventListener("copy", onCopy);
      window.document.removeEventListener("paste", onPaste);
    };
  }, [copy, paste, readOnly]);

  // --- saving: by hand, and (a draft) by itself; unsaved changes are kept in this browser at once
  const [keyTab] = useState(() => tabId());
  const localKey = draftKey(campaign?.id ?? null, keyTab);
  const [autosave, setAutosave] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const doSave = useCallback(async (launch: boolean): Promise<boolean> => {
    setBusy(true);
    setMessage(null);
    const sent = documentText;
    try {
      const saved = await save(document, { launch, draft: !launch && isDraft });
      setSavedText(sent);
      if (campaign === null) dropDraft(localStorage, draftKey(null, keyTab)); // now kept under its id
      const left = (saved.problems ?? []).filter((p) => p.severity !== "warning").length;
      const text = launch ? `Launched: ${saved.status}.`
        : left ? `Saved as version ${saved.version ?? ""}, a draft with ${left} problem${left === 1 ? "" : "s"} to fix before it can be launched.`
        : `Saved as version ${saved.version ?? ""}.`;
      setMessage({ kind: "info", text });
      setAutosave(null);
      if (LIVE_STATUSES.has(saved.status)) setStats((s) => s ?? { nodes: {}, entered: 0, converted: 0 });
      return true;
    } catch (e) {
      setMessage({ kind: "error", text: `Not saved: ${errorText(e)}` });
      return false;
    } finally {
      setBusy(false);
    }
  }, [campaign, document, documentText, isDraft, keyTab, save]);

  // kept in this browser the moment anything changes, dropped once saved
  useEffect(() => {
    if (readOnly) return;
    if (!dirty) {
      dropDraft(localStorage, localKey);
      return;
    }
    const kept = writeDraft(localStorage, localKey, { document: JSON.parse(documentText), baseVersion: campaign?.version ?? null, savedAt: Date.now() });
    if (!kept) setAutosave({ kind: "error", text: "This browser cannot keep your changes: save them before leaving." });
  }, [campaign?.version, dirty, documentText, localKey, readOnly]);

  // a saved draft goes to the server by itself, a moment after the last change (errors and all)
  useEffect(() => {
    if (!dirty || busy || campaign === null || campaign.status !== "draft") return;
    const timer = setTimeout(() => {
      const sent = documentText;
      save(JSON.parse(sent), { draft: true }).then((saved) => {
        setSavedText(sent);
        setAutosave({ kind: "ok", text: `Draft saved (version ${saved.version ?? ""})` });
      }, (e) => setAutosave({ kind: "error", text: `Draft not saved to the server (${errorText(e)}); kept in this browser.` }));
    }, AUTOSAVE_AFTER_MS);
    return () => clearTimeout(timer);
  }, [busy, campaign, dirty, documentText, save]);

  // leaving with unsaved changes: the browser asks on reload or close, the editor on any link
  const [leaving, setLeaving] = useState<(() => void) | null>(null);
  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = ""; // older browsers ask only when it is set
    };
    window.addEventListener("beforeunload", warn);
    const unguard = setLeaveGuard((proceed) => {
      setLeaving(() => proceed);
      return true;
    });
    return () => {
      window.removeEventListener("beforeunload", warn);
      unguard();
    };
  }, [dirty]);
  const leave = useCallback((how: "save" | "leave" | "stay") => {
    const proceed = leaving;
    setLeaving(null);
    if (how === "stay" || !proceed) return;
    if (how === "leave") {
      dropDraft(localStorage, localKey); // the user chose to lose these changes
      proceed();
      return;
    }
    doSave(false).then((savedOk) => savedOk && proceed());
  }, [doSave, leaving, localKey]);

  // the changes restored from this browser can be thrown away (one undo step: even that is
  // undoable), back to the campaign as it was opened: a draft may have autosaved them since
  const discardRestored = useCallback(() => {
    const saved = loaded.document ?? NEW_DOCUMENT;
    history.record();
    setNodes(saved.nodes.map((n, i) => toCanvasNode(n, types, i)));
    setEdges(saved.edges.map(toCanvasEdge));
    setMeta(metaOf(saved));
    setRestored(null);
  }, [history, loaded.document, types]);
  const doAct = useCallback(async (action: "pause" | "resume" | "stop") => {
    setBusy(true);
    try {
      await act(action);
    } catch (e) {
      setMessage({ kind: "error", text: errorText(e) });
    } finally {
      setBusy(false);
    }
  }, [act]);
  const layout = useCallback(() => {
    history.record();
    setNodes((all) => autoLayout(all, graph.current.edges));
    requestAnimationFrame(() => flow.fitView({ padding: 0.15, duration: 200 }));
  }, [flow, history]);

  // --- keyboard: undo, redo, save, cancel placing
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const mod = event.ctrlKey || event.metaKey;
      if (mod && event.key.toLowerCase() === "s") {
        event.preventDefault();
        if (readOnly || busy) return;
        if (errors.length && !isDraft) setMessage({ kind: "error", text: "Not saved: fix the errors first (a running campaign takes only a valid version)." });
        else doSave(false);
        return;
      }
      if (event.key === "Escape") setPlacing(null);
      if (!mod || typingInField(event.target)) return;
      const key = event.key.toLowerCase();
      if ((key === "z" && event.shiftKey) || key === "y") { event.preventDefault(); history.redo(); }
      else if (key === "z") { event.preventDefault(); history.undo(); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [busy, doSave, errors.length, history, isDraft, readOnly]);

  const selected = nodes.filter((n) => n.selected);
  const shown = nodes.find((n) => n.id === (selected.length === 1 ? selected[0].id : openNode));
  const overlay = useMemo(() => ({
    types, problems: byNode, summaries: checked.summaries, portLabels: checked.port_labels, stats, deleteEdge, readOnly,
  }), [types, byNode, checked, stats, deleteEdge, readOnly]);
  const onCanvas = (p: Problem) => p.node_id !== null && nodes.some((n) => n.id === p.node_id);
  // a problem on a node: select the node, open its settings, put the cursor in the field
  const showProblem = (p: Problem) => {
    if (!onCanvas(p)) return;
    setNodes((all) => all.map((n) => (n.selected === (n.id === p.node_id) ? n : { ...n, selected: n.id === p.node_id })));
    setOpenNode(p.node_id);
    setFocus({ pointer: p.pointer, at: Date.now() });
    flow.fitView({ nodes: [{ id: p.node_id as string }], duration: 200, maxZoom: 1 });
  };
  const labelOf = useCallback((n: DocNode) => nodeLabel(n, document.nodes, types), [document.nodes, types]);

  return (
    <div className="cc-editor" data-testid="editor">
      <Toolbar
        meta={meta} onName={(name) => setMeta((m) => ({ ...m, name }))} campaign={campaign} dirty={dirty} busy={busy}
        readOnly={readOnly} errors={errors.length} warnings={problems.length - errors.length} isDraft={isDraft} autosave={autosave}
        canUndo={history.canUndo} canRedo={history.canRedo} onUndo={history.undo} onRedo={history.redo}
        onSave={() => doSave(false)} onLaunch={() => doSave(true)} onAction={doAct}
        onLayout={layout} onFit={() => flow.fitView({ padding: 0.15, duration: 200 })}
        onCopy={() => copy(null)} onPaste={() => { const f = sharedFragment(); if (f) paste(f); }}
      />
      {restored && (
        <div className="banner info" data-testid="restored-notice" role="status">
          Restored your unsaved changes from {new Date(restored.savedAt).toLocaleString()}
          {restored.baseVersion !== null && campaign?.version !== undefined && restored.baseVersion !== campaign.version
            ? ` (made to version ${restored.baseVersion}; the campaign has been saved as version ${campaign.version} since)` : ""}.{" "}
          <button type="button" className="link" onClick={() => setRestored(null)}>Keep them</button>{" "}
          <button type="button" className="link" data-testid="discard-restored" onClick={discardRestored}>Discard them</button>
        </div>
      )}
      {leaving && (
        <Choose
          title="Leave without saving?" testId="leave-dialog" initial={2} onCancel={() => leave("stay")}
          message={`Your changes to “${meta.name || "this campaign"}” are not saved yet. Save them, or leave and lose them.`}
          choices={[
            { label: isDraft && errors.length ? "Save as draft and leave" : "Save and leave", kind: "primary", testId: "leave-save", onChoose: () => leave("save") },
            { label: "Leave without saving", kind: "danger", testId: "leave-discard", onChoose: () => leave("leave") },
            { label: "Stay", testId: "leave-stay", onChoose: () => leave("stay") },
          ]}
        />
      )}
      {message && (
        <div className={`banner ${message.kind}`} data-testid={`editor-${message.kind}`} role={message.kind === "error" ? "alert" : "status"}>
          {message.text} <button type="button" className="link" onClick={() => setMessage(null)}>dismiss</button>
        </div>
      )}
      <div className="cc-body">
        {!readOnly && <Palette types={loaded.types} placing={placing} onPick={setPlacing} hasEntry={nodes.some((n) => declOf(types, n.data.nodeType, n.data.version)?.entry)} />}
        <div className="cc-middle">
          <div className={`cc-canvas${placing ? " placing" : ""}`} onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }} onDrop={onDrop}>
            <OverlayContext.Provider value={overlay}>
              <ReactFlow<CanvasNode, CanvasEdge>
                nodes={nodes} edges={edges} nodeTypes={nodeTypes} edgeTypes={edgeTypes}
                onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
                onBeforeDelete={onBeforeDelete} isValidConnection={isValidConnection}
                onNodeDragStart={() => history.record()} onNodeDoubleClick={(_, node) => setOpenNode(node.id)}
                onPaneClick={onPaneClick}
                onPaneMouseMove={(e) => { pointer.current = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }); }}
                onPaneMouseLeave={() => { pointer.current = null; }}
                snapToGrid snapGrid={GRID} fitView fitViewOptions={{ padding: 0.15, maxZoom: 1 }} minZoom={0.1}
                deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]} multiSelectionKeyCode={["Shift", "Meta", "Control"]}
                nodesDraggable={!readOnly} nodesConnectable={!readOnly} elementsSelectable
                defaultEdgeOptions={{ type: "count" }} connectionRadius={24}
                proOptions={{ hideAttribution: true }}
              >
                <Background gap={GRID[0]} />
                <Controls />
                <MiniMap pannable zoomable nodeStrokeWidth={3} />
              </ReactFlow>
            </OverlayContext.Provider>
            {nodes.length === 0 && <div className="cc-empty">Drag a trigger from the palette to start.</div>}
          </div>
          {/* below the canvas, never over it: a problem must not hide the node it is about */}
          {problems.length > 0 && (
            <ul className="cc-general-problems" data-testid="problems-list" aria-label="Problems">
              {problems.map((p, i) => (
                <li key={i} className={`${p.severity}${onCanvas(p) ? " clickable" : ""}`} data-testid="problem"
                    title={onCanvas(p) ? "Show this node and its setting" : undefined} onClick={() => showProblem(p)}>
                  {p.message}
                </li>
              ))}
            </ul>
          )}
        </div>
        {shown ? (
          <SettingsPanel
            key={shown.id} node={shown} decl={declOf(types, shown.data.nodeType, shown.data.version)}
            newest={types[shown.data.nodeType]} upgrading={upgrading} onUpgrade={() => upgradeNode(shown.id)}
            problems={byNode[shown.id] ?? []} focus={focus}
            nodes={document.nodes} nodeLabel={labelOf} readOnly={readOnly}
            onSettings={(settings) => updateNode(shown.id, { settings }, "settings")}
            onLabel={(label) => updateNode(shown.id, { label }, "label")}
            onClose={() => { setOpenNode(null); setNodes((all) => all.map((n) => ({ ...n, selected: false }))); }}
          />
        ) : (
          <CampaignPanel meta={meta} onChange={setMeta} readOnly={readOnly} campaign={campaign} stats={stats} />
        )}
      </div>
    </div>
  );
}

function metaOf(document: Loaded["document"]): Meta {
  const { nodes: _nodes, edges: _edges, ...meta } = document;
  return meta;
}

/**
 * The node on its new version with its new settings and ports; its edges follow renamed
 * ports, and those from ports the new version lacks are removed. Returns how many were removed.
 */
function upgradeOnCanvas(
  id: string, up: NodeUpgrade,
  setNodes: React.Dispatch<React.SetStateAction<CanvasNode[]>>, setEdges: React.Dispatch<React.SetStateAction<CanvasEdge[]>>,
  edges: CanvasEdge[],
): number {
  const portOf = (e: CanvasEdge) => up.port_renames[e.sourceHandle ?? "out"] ?? e.sourceHandle ?? "out";
  const kept = edges.filter((e) => e.source !== id || up.ports.includes(portOf(e)));
  setNodes((all) => all.map((n) => (n.id === id
    ? { ...n, data: { ...n.data, version: up.version, settings: up.settings, ports: up.ports } } : n)));
  setEdges(kept.map((e) => (e.source === id && portOf(e) !== e.sourceHandle ? { ...e, sourceHandle: portOf(e) } : e)));
  return edges.length - kept.length;
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
