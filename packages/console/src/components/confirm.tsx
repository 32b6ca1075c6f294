import { useEffect, useRef, type ReactNode } from 'react';

/**
 * Shows the <dialog> it is given as a modal while mounted (focus moves into it and stays there) and closes it
 * when unmounted; Escape calls `onCancel` (the caller unmounts it) instead of closing it behind React's back.
 */
export function useModal(onCancel: () => void) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    dialog.showModal();
    const cancel = (e: Event) => {
      e.preventDefault();
      onCancel();
    };
    dialog.addEventListener('cancel', cancel);
    return () => {
      dialog.removeEventListener('cancel', cancel);
      dialog.close();
    };
  }, [onCancel]);
  return ref;
}

/**
 * A modal confirmation (the native <dialog>: focus moves into it and stays there, Escape cancels). Shown while
 * mounted; `onConfirm` runs the action, `onCancel` closes without doing anything.
 */
export function Confirm(props: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useModal(props.onCancel);
  return (
    <dialog ref={ref} className="confirm" aria-labelledby="confirm-title">
      <h2 id="confirm-title">{props.title}</h2>
      <div className="confirm-body">{props.children}</div>
      <div className="actions">
        <button type="button" onClick={props.onCancel} autoFocus>
          Cancel
        </button>
        <button type="button" className="danger" onClick={props.onConfirm} disabled={props.busy}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
