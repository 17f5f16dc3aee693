-- R/D operations (Waste Framework Directive 2008/98/EC, Annexes I and II) with their Eurostat
-- treatment category, and the units circa accepts.
INSERT INTO rd_operation (code, kind, category, description) VALUES
('R1',  'R', 'energy_recovery', 'Use principally as a fuel or other means to generate energy'),
('R2',  'R', 'recycling', 'Solvent reclamation/regeneration'),
('R3',  'R', 'recycling', 'Recycling/reclamation of organic substances which are not used as solvents (including composting)'),
('R4',  'R', 'recycling', 'Recycling/reclamation of metals and metal compounds'),
('R5',  'R', 'recycling', 'Recycling/reclamation of other inorganic materials'),
('R6',  'R', 'recycling', 'Regeneration of acids or bases'),
('R7',  'R', 'recycling', 'Recovery of components used for pollution abatement'),
('R8',  'R', 'recycling', 'Recovery of components from catalysts'),
('R9',  'R', 'recycling', 'Oil re-refining or other reuses of oil'),
('R10', 'R', 'recycling', 'Land treatment resulting in benefit to agriculture or ecological improvement'),
('R11', 'R', 'recycling', 'Use of wastes obtained from any of the operations numbered R1 to R10'),
('R12', 'R', 'interim', 'Exchange of wastes for submission to any of the operations numbered R1 to R11'),
('R13', 'R', 'interim', 'Storage of wastes pending any of the operations numbered R1 to R12'),
('D1',  'D', 'landfill', 'Deposit into or onto land (e.g. landfill)'),
('D2',  'D', 'other_disposal', 'Land treatment'),
('D3',  'D', 'other_disposal', 'Deep injection'),
('D4',  'D', 'other_disposal', 'Surface impoundment'),
('D5',  'D', 'landfill', 'Specially engineered landfill'),
('D6',  'D', 'other_disposal', 'Release into a water body except seas/oceans'),
('D7',  'D', 'other_disposal', 'Release to seas/oceans including sea-bed insertion'),
('D8',  'D', 'pretreatment', 'Biological treatment resulting in final compounds discarded by D1 to D12'),
('D9',  'D', 'pretreatment', 'Physico-chemical treatment resulting in final compounds discarded by D1 to D12'),
('D10', 'D', 'incineration', 'Incineration on land'),
('D11', 'D', 'incineration', 'Incineration at sea'),
('D12', 'D', 'landfill', 'Permanent storage'),
('D13', 'D', 'interim', 'Blending or mixing prior to submission to any of the operations numbered D1 to D12'),
('D14', 'D', 'interim', 'Repackaging prior to submission to any of the operations numbered D1 to D13'),
('D15', 'D', 'interim', 'Storage pending any of the operations numbered D1 to D14')
ON CONFLICT (code) DO NOTHING;

INSERT INTO unit (code, kind, factor, uncefact) VALUES
('kg', 'mass', 1, 'KGM'),
('t',  'mass', 1000, 'TNE'),
('g',  'mass', 0.001, 'GRM'),
('lb', 'mass', 0.45359237, 'LBR'),
('l',  'volume', 0.001, 'LTR'),
('m3', 'volume', 1, 'MTQ')
ON CONFLICT (code) DO NOTHING;
