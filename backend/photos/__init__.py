"""Family photos: relatives upload them, staff moderate them, tablets download them.

- ``upload``: the streaming multipart reader (a size limit enforced while the bytes arrive);
- ``processing``: the real checks with Pillow and the re-encoding (no metadata leaves the phone);
- ``storage``: content-addressed files, written to a temporary name then renamed;
- ``service``: rows, moderation, the tablets' photo index, hearts;
- ``routes``: the family page's upload and list, the tablet's authenticated download.

See docs/photos.md.
"""
