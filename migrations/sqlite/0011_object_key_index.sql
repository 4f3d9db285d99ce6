-- Finding the blob that names an object (DESIGN §18): `admin objects reconcile` asks this of
-- every object in the store, so it must not scan the table each time.
CREATE INDEX blobs_by_object_key ON blobs (object_key) WHERE object_key IS NOT NULL;
