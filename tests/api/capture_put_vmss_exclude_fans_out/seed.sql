-- Agents of instances 0, 1 and 2 of scale set vmss1, as `netwatchd agent add` leaves them.
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms)
VALUES ('30000000-0000-4000-8000-000000000000', '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1', lower('/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1'), '{sub}', '0', '0',
        'a000000000000000000000000000000000000000000000000000000000000000', 1767225660000),
       ('30000000-0000-4000-8000-000000000001', '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1', lower('/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1'), '{sub}', '1', '1',
        'a000000000000000000000000000000000000000000000000000000000000001', 1767225660000),
       ('30000000-0000-4000-8000-000000000002', '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1', lower('/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/vmss1'), '{sub}', '2', '2',
        'a000000000000000000000000000000000000000000000000000000000000002', 1767225660000);
