declare module '../../../kernel/database/tables.js' {
  interface Tables {
    users: UsersTable;
    api_keys: ApiKeysTable;
  }
}

export interface UsersTable {
  id: string;
  /** `operator`, a partner id or a customer id. */
  tenant_id: string;
  tenant_kind: 'operator' | 'partner' | 'customer';
  role: string;
  name: string;
  email: string;
  status: 'active' | 'disabled';
  created_at: Date;
  disabled_at: Date | null;
}

export interface ApiKeysTable {
  id: string;
  user_id: string;
  tenant_id: string;
  name: string;
  secret_hash: Buffer;
  secret_hint: string;
  created_at: Date;
  created_by: string | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}
