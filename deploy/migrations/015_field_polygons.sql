-- Fields imported from the Ministry of Agriculture's field polygons
-- (筆ポリゴン) keep the polygon's uuid (``polygon_uuid``), so that the next
-- year's file and the officers' assignment CSV find the same field again.
-- A field drawn otherwise has none.
ALTER TABLE fields ADD COLUMN polygon_uuid uuid UNIQUE;
