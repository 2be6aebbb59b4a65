// Live updates over Socket.IO (engine/ops/live.py): `stats` and `status` for one campaign's room,
// `status` and `totals` for everyone watching the campaigns page.

import { useEffect, useRef } from "react";
import { io, type Socket } from "socket.io-client";
import type { Campaign, CampaignStats } from "./types";

let socket: Socket | null = null;

function connection(): Socket {
  // the session cookie proves who we are (server.py refuses anonymous connections)
  socket ??= io({ transports: ["websocket", "polling"], withCredentials: true });
  return socket;
}

/** A campaign's counts, as the `totals` event carries them (engine/ops/live.py). */
export interface CampaignTotals {
  campaign_id: number;
  entered: number;
  converted: number;
  sent: number;
}

export interface LiveHandlers {
  stats?: (stats: CampaignStats) => void;
  status?: (campaign: Campaign) => void;
  totals?: (totals: CampaignTotals) => void;
  /** in the room (again, after a reconnect): read the current figures now, no event will be missed */
  joined?: () => void;
}

/** Join a room (a campaign's, or `"campaigns"` for the list) and call the handlers on its events. */
export function useLive(room: { campaign_id: number } | { campaigns: true } | null, handlers: LiveHandlers): void {
  const latest = useRef(handlers);
  latest.current = handlers;
  const key = room ? JSON.stringify(room) : null;
  useEffect(() => {
    if (!key) return;
    const s = connection();
    const join = () => s.emit("join", JSON.parse(key), (ok: boolean) => ok && latest.current.joined?.());
    const onStats = (data: CampaignStats) => latest.current.stats?.(data);
    const onStatus = (data: Campaign) => latest.current.status?.(data);
    const onTotals = (data: CampaignTotals) => latest.current.totals?.(data);
    s.on("connect", join); // again after every reconnect: rooms do not survive one
    if (s.connected) join();
    s.on("stats", onStats);
    s.on("status", onStatus);
    s.on("totals", onTotals);
    return () => {
      s.emit("leave", JSON.parse(key));
      s.off("connect", join);
      s.off("stats", onStats);
      s.off("status", onStatus);
      s.off("totals", onTotals);
    };
  }, [key]);
}
