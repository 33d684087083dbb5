// A conference's documents as the booking form sees them, through the documents API
// (`POST /api/v1/conferences/{id}/documents`, multipart: `file`; `?series=true` for the
// whole series; `GET …/documents` lists them). The JSON helper of common.js sends JSON
// only, so the upload is its own request, with the session's CSRF header.

import { ApiFailure, api } from './common.js';

/** Upload one file to a conference (or its series); resolves with the document. */
export async function uploadDocument(csrfToken, conferenceId, file, { series = false } = {}) {
  const form = new FormData();
  form.append('file', file, file.name);
  const query = series ? '?series=true' : '';
  const response = await fetch(`/api/v1/conferences/${conferenceId}/documents${query}`, {
    method: 'POST',
    body: form,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken },
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) throw new ApiFailure(response.status, payload);
  return payload;
}

/** The conference's documents (its own and its series'), or null when they cannot be
 * listed (no documents API on this service). */
export async function listDocuments(conferenceId) {
  try {
    const body = await api('GET', `/api/v1/conferences/${conferenceId}/documents`);
    return body.documents || [];
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) return null;
    throw error;
  }
}

