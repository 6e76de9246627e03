package storage

import "context"

// GetSetting returns the value stored under name, or core.ErrNotFound.
func (d *DB) GetSetting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := d.QueryRow(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if err != nil {
		return nil, notFound(err, "reading setting "+name)
	}
	return v, nil
}

// PutSetting stores value under name, replacing any earlier value.
func (d *DB) PutSetting(ctx context.Context, name string, value []byte) error {
	_, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return err
}
