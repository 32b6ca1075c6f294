import type { Db } from '../store/index.ts';
import type { BaselineState } from './baseline.ts';
import type { NoveltyState } from './device-state.ts';
import type { SavedState } from './engine.ts';

/** Saves the detectors' state (novelty per device, learned baselines) in `monitor_state`. */
export async function saveState(db: Db, state: SavedState, at: number): Promise<void> {
  const rows = [
    ...state.novelty.map(([id, novelty]) => ({
      key: `novelty:${id}`,
      state: JSON.stringify(novelty),
      updated_at: at,
    })),
    { key: 'baselines', state: JSON.stringify(state.baselines), updated_at: at },
  ];
  for (let i = 0; i < rows.length; i += 200)
    await db
      .insertInto('monitor_state')
      .values(rows.slice(i, i + 200))
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          state: eb.ref('excluded.state'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute();
}

/** The detectors' state as last saved. */
export async function loadState(db: Db): Promise<SavedState> {
  const rows = await db.selectFrom('monitor_state').selectAll().execute();
  const novelty: [string, NoveltyState][] = [];
  let baselines: Record<string, BaselineState> = {};
  for (const row of rows) {
    if (row.key === 'baselines') baselines = JSON.parse(row.state) as Record<string, BaselineState>;
    else if (row.key.startsWith('novelty:'))
      novelty.push([row.key.slice('novelty:'.length), JSON.parse(row.state) as NoveltyState]);
  }
  return { novelty, baselines };
}
