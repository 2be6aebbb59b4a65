// One GET kept current: read again whenever `path` changes or `reload` is called. Calls can
// overlap (filters typed quickly, a live re-read while another is under way) and answers can
// come back in any order: only the latest call's answer (or error) is kept, because a slow
// older answer must never overwrite a newer one.

import { useCallback, useEffect, useRef, useState, type Dispatch, type SetStateAction } from "react";
import { api, errorText } from "./api";

export interface Fetched<T> {
  /** the latest call's answer; null until the first one */
  data: T | null;
  /** change the answer in place (a live event, an action's answer) until the next read */
  setData: Dispatch<SetStateAction<T | null>>;
  loading: boolean;
  error: string | null;
  setError: Dispatch<SetStateAction<string | null>>;
  /** read the same path again */
  reload: () => void;
}

/** `onAnswer` runs on each kept answer, before it is stored; it is the one given when the call was made. */
export function useFetched<T>(path: string, onAnswer?: (answer: T) => void): Fetched<T> {
  const [data, setData] = useState<T | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [reads, setReads] = useState(0);
  const latest = useRef(0);
  // in a ref rather than the effect's dependencies: a new closure each render must not read again
  const handler = useRef(onAnswer);
  handler.current = onAnswer;

  useEffect(() => {
    const call = ++latest.current; // an older call's answer arriving late is dropped
    const answered = handler.current; // the closure of the render that made this call
    setLoading(true);
    api.get<T>(path).then(
      (answer) => {
        if (call !== latest.current) return;
        answered?.(answer);
        setData(answer);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (call !== latest.current) return;
        setError(errorText(e));
        setLoading(false);
      },
    );
  }, [path, reads]);

  const reload = useCallback(() => setReads((n) => n + 1), []);
  return { data, setData, loading, error, setError, reload };
}
