// The update clients convert can wire a device for, by id.
import type { ClientId, UpdateClient } from './client.js';
import { swupdateClient } from './swupdate/index.js';
import { menderClient } from './mender/index.js';

export const CLIENTS: Record<ClientId, UpdateClient> = { swupdate: swupdateClient, mender: menderClient };

export const clientById = (id: ClientId): UpdateClient => CLIENTS[id];
