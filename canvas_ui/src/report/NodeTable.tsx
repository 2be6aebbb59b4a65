// Every node of the campaign: how many entered, how many wait there now, and how many left
// by each of its ports.

import { count, nodeName } from "./format";
import type { ReportNode } from "./types";

export function NodeTable({ nodes }: { nodes: ReportNode[] }) {
  return (
    <section className="report-section" aria-labelledby="report-nodes-title">
      <h2 id="report-nodes-title">Steps</h2>
      <div className="report-table-scroll">
        <table className="report-table" data-testid="report-nodes">
          <thead>
            <tr>
              <th>Step</th>
              <th>Type</th>
              <th className="num">Entered</th>
              <th className="num">Waiting</th>
              <th>Left by port</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((node) => {
              const ports = Object.entries(node.left ?? {});
              return (
                <tr key={node.id} data-testid="report-node-row" data-node-id={node.id} className={node.removed ? "removed" : undefined}>
                  <td className="node-cell">
                    <span className="node-name">{nodeName(node)}</span>
                    {node.removed && <span className="badge muted" title="Not in the current version of the campaign">removed</span>}
                  </td>
                  <td className="muted" data-testid="node-type">{node.type_label}</td>
                  <td className="num" data-testid="node-entered">{count(node.entered)}</td>
                  <td className="num" data-testid="node-waiting">{count(node.waiting)}</td>
                  <td>
                    {ports.length === 0 ? <span className="muted">–</span> : (
                      <span className="ports">
                        {ports.map(([port, n]) => (
                          <span key={port} className="port-count" data-testid="node-left" data-port={port}>
                            <span className="port-name">{port}</span> {count(n)}
                          </span>
                        ))}
                      </span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
